//! quarry-format: see SPEC.md.
