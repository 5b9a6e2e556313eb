#!/usr/bin/env bash
# Builds the npm package `isosock` from js/ and packs it: target/npm/isosock-<version>.tgz.
#
# wasm-pack builds the wasm module and its JS glue (--target web, which browsers, bundlers
# and, through js/npm/node.js, Node.js all load); npm's binaryen shrinks it (Debian's
# binaryen breaks wasm-bindgen output); js/npm/ adds package.json, the Node.js entry and the
# README. Needs what scripts/setup.sh installs (wasm-pack, wasm-bindgen-cli, tests/js deps).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
NPM="$ROOT/target/npm"
OUT="$NPM/isosock"
WASM_OPT="$ROOT/tests/js/node_modules/.bin/wasm-opt"

version_of() { sed -n 's/^version = "\(.*\)"/\1/p' "$1" | head -1; }
CRATE_VERSION=$(version_of js/Cargo.toml)
PKG_VERSION=$(node -p 'require("./js/npm/package.json").version')
if [ "$CRATE_VERSION" != "$PKG_VERSION" ]; then
  echo "build-js.sh: js/Cargo.toml is $CRATE_VERSION but js/npm/package.json is $PKG_VERSION" >&2
  exit 1
fi
if [ ! -x "$WASM_OPT" ]; then
  echo "build-js.sh: $WASM_OPT is missing; run scripts/setup.sh" >&2
  exit 1
fi

rm -rf "$OUT"
wasm-pack --quiet build js --target web --profile wasm-release --mode no-install --no-opt \
  --no-pack --out-dir "$OUT" --out-name isosock
rm -f "$OUT/.gitignore"
"$WASM_OPT" -Oz "$OUT/isosock_bg.wasm" -o "$OUT/isosock_bg.wasm"
cp js/npm/package.json js/npm/node.js js/npm/README.md LICENSE-MIT LICENSE-APACHE "$OUT/"

rm -f "$NPM"/isosock-*.tgz
(cd "$NPM" && npm pack --silent ./isosock >/dev/null)
TARBALL="$NPM/isosock-$PKG_VERSION.tgz"
[ -f "$TARBALL" ] || { echo "build-js.sh: npm pack did not produce $TARBALL" >&2; exit 1; }

size() { wc -c <"$1" | tr -d ' '; }
gz() { gzip -9c "$1" | wc -c | tr -d ' '; }
echo "npm package: $TARBALL ($(size "$TARBALL") bytes)"
echo "  isosock_bg.wasm: $(size "$OUT/isosock_bg.wasm") bytes raw, $(gz "$OUT/isosock_bg.wasm") gzipped"
echo "  isosock.js:      $(size "$OUT/isosock.js") bytes raw, $(gz "$OUT/isosock.js") gzipped"
