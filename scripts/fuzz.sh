#!/usr/bin/env bash
# Runs each cargo-fuzz target for a bounded time (default 60 s; FUZZ_SECS=N to change), after
# replaying the minimised crashers kept in fuzz/regressions/<target>/. Works on stable Rust:
# cargo-fuzz needs nightly flags (-Z sanitizer), which RUSTC_BOOTSTRAP=1 unlocks.
#   scripts/fuzz.sh                # all targets, 60 s each
#   FUZZ_SECS=600 scripts/fuzz.sh reader
# New corpus entries go to fuzz/target/corpus/<target>/ (not committed); the seed corpus in
# fuzz/corpus/<target>/ is read only. A crash leaves its input in fuzz/artifacts/<target>/:
# minimise it (cargo fuzz tmin), add it to fuzz/regressions/<target>/, fix the bug.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${FUZZ_SECS:-60}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then targets=(reader query_parse); fi
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi
cd fuzz
# Own target dir: the fuzz build uses sanitizer flags that would invalidate the main one.
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/target}"
for t in "${targets[@]}"; do
  echo "== cargo fuzz build $t"
  cargo fuzz build -O "$t"
  mkdir -p "target/corpus/$t" "regressions/$t"
  if [ -n "$(ls -A "regressions/$t" 2>/dev/null)" ]; then
    echo "== $t: replaying fuzz/regressions/$t"
    cargo fuzz run -O "$t" "regressions/$t" -- -runs=0
  fi
  echo "== $t: fuzzing for ${secs}s"
  # cargo fuzz's own status counts: a build or start failure (or a crash) is a failure, never
  # hidden behind the log filter.
  set +e
  cargo fuzz run -O "$t" "target/corpus/$t" "corpus/$t" -- -max_total_time="$secs" -print_final_stats=1 \
    >"target/fuzz-$t.log" 2>&1
  status=$?
  set -e
  # Shown for the log only (no match is fine); the checks below decide.
  grep -E "stat::|Done|ERROR|SUMMARY|panicked" "target/fuzz-$t.log" || true
  if grep -qE "ERROR|panicked|SUMMARY: " "target/fuzz-$t.log"; then
    echo "== $t: FOUND A CRASH (see fuzz/artifacts/$t and fuzz/target/fuzz-$t.log)"
    exit 1
  fi
  if [ "$status" -ne 0 ]; then
    echo "== $t: cargo fuzz run failed (exit $status); last lines of fuzz/target/fuzz-$t.log:" >&2
    tail -n 20 "target/fuzz-$t.log" >&2
    exit 1
  fi
  # libFuzzer ends a completed run with "Done N runs in S second(s)": without it, the fuzzer
  # never ran.
  if ! grep -q "^Done [0-9]* runs" "target/fuzz-$t.log"; then
    echo "== $t: the fuzzer did not report a completed run; see fuzz/target/fuzz-$t.log" >&2
    exit 1
  fi
done
echo "== fuzzing passed"
