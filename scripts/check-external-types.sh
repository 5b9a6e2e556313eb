#!/usr/bin/env bash
# Lists every foreign crate's type in isosock's public API, natively and for
# wasm32-unknown-unknown (every feature on), and fails on any not in external-types.toml.
#
# `cargo check-external-types` needs a pinned nightly; this builds the same rustdoc JSON with
# the stable toolchain (RUSTC_BOOTSTRAP=1 unlocks `--output-format json`) and walks it with
# scripts/check_external_types.py (Python 3.11+, stdlib only).
set -euo pipefail
cd "$(dirname "$0")/.."

json_flags=(-- -Z unstable-options --output-format json)
RUSTC_BOOTSTRAP=1 cargo rustdoc --quiet --lib --all-features "${json_flags[@]}"
RUSTC_BOOTSTRAP=1 cargo rustdoc --quiet --lib --all-features --target wasm32-unknown-unknown \
  "${json_flags[@]}"

python3 scripts/check_external_types.py external-types.toml \
  target/doc/isosock.json target/wasm32-unknown-unknown/doc/isosock.json
