//! For corruption tests and the fuzzer: make a damaged footer's hash match again, so the bytes
//! get past `open`'s footer check and reach the parsing of the footer, the chunks and the key
//! index (a flipped footer byte would otherwise only ever exercise the hash comparison).

use xxhash_rust::xxh3::xxh3_128;

use crate::spec::TRAILER_LEN;

/// Rewrites the trailer's `footer_hash` (SPEC.md: Trailer) as the xxh3-128 of the footer
/// bytes the trailer points at. Returns false, changing nothing, when the trailer's offsets do
/// not frame a footer inside `bytes`. Never panics.
pub fn rehash_footer(bytes: &mut [u8]) -> bool {
    let Some(trailer_at) = bytes.len().checked_sub(TRAILER_LEN) else {
        return false;
    };
    let word = |at: usize| -> Option<u64> {
        let b = bytes.get(trailer_at + at..trailer_at + at + 8)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    };
    let (Some(offset), Some(len)) = (word(0), word(8)) else {
        return false;
    };
    let Some(end) = offset.checked_add(len) else {
        return false;
    };
    if end != trailer_at as u64 {
        return false;
    }
    let Some(footer) = bytes.get(offset as usize..trailer_at) else {
        return false;
    };
    let hash = xxh3_128(footer).to_le_bytes();
    bytes[trailer_at + 16..trailer_at + 32].copy_from_slice(&hash);
    true
}
