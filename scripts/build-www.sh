#!/usr/bin/env bash
# Builds the chat demo's browser client (www/client, Rust -> wasm32) with the size-optimized
# `wasm-release` profile and generates its JS glue with wasm-bindgen (--target web) into
# www/pkg/, which www/index.html loads.
#
# Idempotent and quick when nothing changed: cargo rebuilds nothing, and wasm-bindgen only runs
# when the wasm module, the wasm-bindgen CLI or its flags changed. No wasm-opt: Debian's
# binaryen (108) breaks wasm-bindgen 0.2.13x output, so it is left out on purpose.
#
# Needs: the wasm32-unknown-unknown target and wasm-bindgen-cli of exactly the version in
# Cargo.lock (scripts/setup.sh installs both).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
case $target_dir in /*) ;; *) target_dir=$root/$target_dir ;; esac
out=$root/www/pkg
crate=isosock_chat_client
wasm=$target_dir/wasm32-unknown-unknown/wasm-release/$crate.wasm

# wasm-bindgen's CLI must match the wasm-bindgen crate in Cargo.lock exactly.
want=$(awk '$0 == "name = \"wasm-bindgen\"" { getline; gsub(/version = |"/, ""); print; exit }' \
  "$root/Cargo.lock")
have=$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }') || true
if [ -z "$want" ]; then
  echo "build-www: no wasm-bindgen in $root/Cargo.lock" >&2
  exit 1
fi
if [ "$have" != "$want" ]; then
  echo "build-www: need wasm-bindgen CLI $want (found: ${have:-none});" \
    "run: cargo install wasm-bindgen-cli --version =$want --no-default-features" >&2
  exit 1
fi

cargo build --quiet --manifest-path "$root/Cargo.toml" -p isosock-chat-client \
  --target wasm32-unknown-unknown --profile wasm-release

# Skip wasm-bindgen when its outputs were made from this very module by this very CLI.
stamp=$out/.build-stamp
# Names and producer info only cost bytes in a page (about 70 KB here).
flags=(--target web --no-typescript --remove-name-section --remove-producers-section)
key="$(cksum <"$wasm" | awk '{ print $1 "-" $2 }') wasm-bindgen-$have ${flags[*]}"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ] && [ -f "$out/${crate}_bg.wasm" ] &&
  [ -f "$out/$crate.js" ]; then
  echo "build-www: $out is up to date"
  exit 0
fi

# Generate next to the output and swap it in whole, so a server never serves half a package.
tmp=$(mktemp -d "$root/www/.pkg.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
wasm-bindgen "${flags[@]}" --out-dir "$tmp" "$wasm"
echo "$key" >"$tmp/.build-stamp"
rm -rf "$out.old"
if [ -d "$out" ]; then mv "$out" "$out.old"; fi
mv "$tmp" "$out"
rm -rf "$out.old"
chmod 755 "$out"

size=$(wc -c <"$out/${crate}_bg.wasm")
gz=$(gzip -9 -c "$out/${crate}_bg.wasm" | wc -c)
echo "build-www: $out/${crate}_bg.wasm: $size bytes ($gz gzipped)"
