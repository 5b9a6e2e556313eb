#!/usr/bin/env bash
# Footprint of isosock in the browser: the size of a minimal echo client (bench/footprint: dial,
# write one message, read it, close) built like a shipped app (the wasm-release profile:
# opt-level z, LTO; wasm-bindgen --target web; npm binaryen's wasm-opt -Oz), and of the npm
# package's module (scripts/build-js.sh), raw and gzip -9; which crates the library pulls into
# a wasm32 build; and what the client's .wasm is made of (bench/footprint/sizes.mjs over a copy
# that keeps the name section). Prints markdown.
#
# --no-npm-build measures the npm package already in target/npm/isosock instead of rebuilding
# it. Needs what scripts/setup.sh installs; installs nothing itself.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT="$ROOT/target/bench-footprint"
WASM_OPT="$ROOT/tests/js/node_modules/.bin/wasm-opt"
CRATE=isosock_footprint
NPM="$ROOT/target/npm/isosock"

die() { echo "bench-footprint.sh: $*" >&2; exit 1; }
[ -x "$WASM_OPT" ] || die "$WASM_OPT is missing; run scripts/setup.sh"
want=$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)".*/\1/p' bench/footprint/Cargo.toml | head -1)
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')
[ "$want" = "$have" ] || die "wasm-bindgen CLI is '${have:-missing}', the crate pins $want; run scripts/setup.sh"
npm_build=1
[ "${1:-}" = --no-npm-build ] && npm_build=0

echo "bench-footprint.sh: building bench/footprint and the npm package" >&2
cargo build --quiet --profile wasm-release --target wasm32-unknown-unknown -p isosock-footprint
rm -rf "$OUT" && mkdir -p "$OUT"
wasm-bindgen --target web --out-dir "$OUT/pkg" "target/wasm32-unknown-unknown/wasm-release/$CRATE.wasm"
cp "$OUT/pkg/${CRATE}_bg.wasm" "$OUT/unoptimized.wasm"
"$WASM_OPT" -Oz "$OUT/unoptimized.wasm" -o "$OUT/pkg/${CRATE}_bg.wasm"
# The same optimization keeping function names, for the breakdown (the code is identical).
"$WASM_OPT" -Oz -g "$OUT/unoptimized.wasm" -o "$OUT/names.wasm"

if [ "$npm_build" = 1 ]; then ./scripts/build-js.sh >&2; fi
[ -f "$NPM/isosock_bg.wasm" ] || die "$NPM/isosock_bg.wasm is missing; run scripts/build-js.sh"
# The npm module with names: the same wasm-release build of js/ through the same tools.
wasm-bindgen --target web --out-dir "$OUT/npm" --out-name isosock \
  target/wasm32-unknown-unknown/wasm-release/isosock_js.wasm
"$WASM_OPT" -Oz -g "$OUT/npm/isosock_bg.wasm" -o "$OUT/npm-names.wasm"

size() { wc -c <"$1" | tr -d ' '; }
gz() { gzip -9c "$1" | wc -c | tr -d ' '; }
row() { printf '| %s | %s | %s |\n' "$1" "$(size "$2")" "$(gz "$2")"; }

echo "## Sizes (bytes)"
echo
echo "| artifact | raw | gzip -9 |"
echo "| --- | ---: | ---: |"
row "minimal client .wasm, wasm-bindgen output (before wasm-opt)" "$OUT/unoptimized.wasm"
row "minimal client .wasm, wasm-opt -Oz (shipped)" "$OUT/pkg/${CRATE}_bg.wasm"
row "minimal client JS glue (${CRATE}.js)" "$OUT/pkg/${CRATE}.js"
row "npm package isosock_bg.wasm (scripts/build-js.sh)" "$NPM/isosock_bg.wasm"
row "npm package JS glue (isosock.js)" "$NPM/isosock.js"
echo

echo "## Crates in the wasm32 build of isosock (normal edges, proc macros left out)"
echo
echo "| features | crates | none of tokio, tungstenite, serde, http, rustls, ring, hyper? |"
echo "| --- | --- | --- |"
for features in --no-default-features "" --all-features; do
  crates=$(cargo tree -p isosock --target wasm32-unknown-unknown -e normal,no-proc-macro \
    $features --prefix none --format '{p}' | sed 's/ (.*//; s/ v/ /' | grep -v '^isosock ' | sort -u)
  banned=$(echo "$crates" | awk '{print $1}' |
    grep -E '^(tokio.*|tungstenite|tokio-tungstenite|serde.*|http|httparse|rustls.*|ring|hyper.*|webpki.*)$' |
    tr '\n' ' ' || true)
  printf '| %s | %s | %s |\n' "${features:-default}" "$(echo "$crates" | paste -sd, - | sed 's/,/, /g')" \
    "${banned:+no: $banned}${banned:-yes}"
done
echo

echo "## What the minimal client's .wasm is made of"
echo
node bench/footprint/sizes.mjs "$OUT/names.wasm" 25
echo
echo "## What the npm package's .wasm is made of"
echo
node bench/footprint/sizes.mjs "$OUT/npm-names.wasm" 15
