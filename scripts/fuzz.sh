#!/usr/bin/env bash
# Builds the fuzz targets in fuzz/ (cargo-fuzz, libFuzzer + AddressSanitizer) and runs each for
# SECONDS (default 60) from its seed corpus in fuzz/corpus/<target>. A crash or a failed
# assertion stops the run and fails the script; the input is saved in fuzz/artifacts/<target>.
# New inputs the fuzzer finds go to a scratch corpus, so the committed seeds stay small.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
# Needs cargo-fuzz (scripts/setup.sh installs it). The stable toolchain runs it with
# RUSTC_BOOTSTRAP=1, which lets it accept the -Z sanitizer flags cargo-fuzz passes.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi
summary=()
for t in "${targets[@]}"; do
  scratch=$(mktemp -d)
  mkdir -p "fuzz/corpus/$t"
  echo "== fuzz $t for ${seconds}s"
  log=$(mktemp)
  if ! cargo fuzz run -O "$t" "$scratch" "fuzz/corpus/$t" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 \
      >"$log" 2>&1; then
    tail -60 "$log"
    echo "fuzz.sh: target $t failed; the input is in fuzz/artifacts/$t" >&2
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | awk '{print $2}')
  summary+=("$t: ${runs:-?} executions, coverage ${cov:-?} edges, no failures")
  rm -rf "$scratch" "$log"
done
echo
printf '%s\n' "${summary[@]}"
