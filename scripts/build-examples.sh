#!/usr/bin/env bash
# Builds the chat demo's framework frontends (examples/leptos-chat, examples/yew-chat; Rust ->
# wasm32) with the size-optimized `wasm-release` profile, generates their JS glue with
# wasm-bindgen (--target web), and assembles each page in target/examples-web/<name>/:
# style.css (the demo's, www/style.css), pkg/, and for Yew index.html. The Yew page is
# rendered in the browser; serve it with
#   cargo run --example chat_server --features hyper -- 8080 target/examples-web/yew
# The Leptos page is rendered on the server and hydrated in the browser: its wasm is the
# library built with `--features hydrate`, and its server (target/debug/isosock-leptos-chat,
# built here with `--features ssr`) renders the page from the same components:
#   target/debug/isosock-leptos-chat 8080 target/examples-web/leptos
#
# Usage: scripts/build-examples.sh [leptos] [yew]     (default: both)
#
# Idempotent and quick when nothing changed: cargo rebuilds nothing, and a page is only
# regenerated when its wasm module, its index.html, the stylesheet, the wasm-bindgen CLI or
# its flags changed. No wasm-opt: Debian's binaryen (108) breaks wasm-bindgen 0.2.13x output.
#
# Needs: the wasm32-unknown-unknown target and wasm-bindgen-cli of exactly the version in
# Cargo.lock (scripts/setup.sh installs both). A cold build takes minutes on 2 cores (Leptos
# most, and it builds twice: for the page and for the server).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
case $target_dir in /*) ;; *) target_dir=$root/$target_dir ;; esac
web=$target_dir/examples-web

names=("$@")
[ ${#names[@]} -gt 0 ] || names=(leptos yew)
for name in "${names[@]}"; do
  case $name in
    leptos | yew) ;;
    *) echo "build-examples: unknown example '$name' (leptos or yew)" >&2; exit 2 ;;
  esac
done

# wasm-bindgen's CLI must match the wasm-bindgen crate in Cargo.lock exactly.
want=$(awk '$0 == "name = \"wasm-bindgen\"" { getline; gsub(/version = |"/, ""); print; exit }' \
  "$root/Cargo.lock")
have=$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }') || true
if [ -z "$want" ]; then
  echo "build-examples: no wasm-bindgen in $root/Cargo.lock" >&2
  exit 1
fi
if [ "$have" != "$want" ]; then
  echo "build-examples: need wasm-bindgen CLI $want (found: ${have:-none});" \
    "run: cargo install wasm-bindgen-cli --version =$want --no-default-features" >&2
  exit 1
fi

build=(cargo build --quiet --manifest-path "$root/Cargo.toml")
for name in "${names[@]}"; do
  case $name in
    leptos)
      "${build[@]}" -p isosock-leptos-chat --lib --features hydrate \
        --target wasm32-unknown-unknown --profile wasm-release
      "${build[@]}" -p isosock-leptos-chat --bin isosock-leptos-chat --features ssr
      ;;
    yew) "${build[@]}" -p isosock-yew-chat --target wasm32-unknown-unknown --profile wasm-release ;;
  esac
done

# Names and producer info only cost bytes in a page.
flags=(--target web --no-typescript --remove-name-section --remove-producers-section)
css=$root/www/style.css
mkdir -p "$web"

for name in "${names[@]}"; do
  case $name in
    # The library (cdylib) for hydration; the server renders the HTML.
    leptos) wasm=$target_dir/wasm32-unknown-unknown/wasm-release/isosock_leptos_chat.wasm html= ;;
    yew) wasm=$target_dir/wasm32-unknown-unknown/wasm-release/isosock-yew-chat.wasm
      html=$root/examples/yew-chat/index.html ;;
  esac
  out=$web/$name
  module=${name}_chat
  stamp=$out/.build-stamp
  sums=$(cat "$wasm" ${html:+"$html"} "$css" | cksum | awk '{ print $1 "-" $2 }')
  key="$sums wasm-bindgen-$have ${flags[*]} --out-name $module"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ] && [ -f "$out/pkg/${module}_bg.wasm" ] &&
    [ -f "$out/pkg/$module.js" ] && { [ -z "$html" ] || [ -f "$out/index.html" ]; } &&
    [ -f "$out/style.css" ]; then
    echo "build-examples: $out is up to date"
    continue
  fi

  # Assemble next to the output and swap it in whole, so a server never serves half a page.
  tmp=$(mktemp -d "$web/.$name.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  wasm-bindgen "${flags[@]}" --out-name "$module" --out-dir "$tmp/pkg" "$wasm"
  if [ -n "$html" ]; then cp "$html" "$tmp/index.html"; fi
  cp "$css" "$tmp/style.css"
  echo "$key" >"$tmp/.build-stamp"
  rm -rf "$out.old"
  if [ -d "$out" ]; then mv "$out" "$out.old"; fi
  mv "$tmp" "$out"
  trap - EXIT
  rm -rf "$out.old"
  chmod 755 "$out"

  size=$(wc -c <"$out/pkg/${module}_bg.wasm")
  gz=$(gzip -9 -c "$out/pkg/${module}_bg.wasm" | wc -c)
  echo "build-examples: $out/pkg/${module}_bg.wasm: $size bytes ($gz gzipped)"
done
