#!/usr/bin/env bash
# The main demo: the chat in the browser, isosock on both ends. Builds the wasm client
# (scripts/build-www.sh) and the chat server (examples/chat_server.rs), starts the server on
# 127.0.0.1 and prints the address to open; runs until Ctrl-C, which makes the server close
# every connection with 1001 (going away) before it exits.
#
# Usage: scripts/demo.sh [PORT]    or    PORT=9000 scripts/demo.sh
# (default 8080; 0 picks a free port). The echo client/server demo is scripts/echo-demo.sh.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
case $target_dir in /*) ;; *) target_dir=$root/$target_dir ;; esac
port=${1:-${PORT:-8080}}
case $port in
  '' | *[!0-9]*) echo "demo: not a port number: $port" >&2; exit 2 ;;
esac

"$root/scripts/setup.sh" --demo
"$root/scripts/build-www.sh"
cargo build --quiet --manifest-path "$root/Cargo.toml" --example chat_server --features hyper

# The server runs in the foreground so that Ctrl-C reaches it directly. Its output passes
# through a reader that prints a banner once the address is known; the reader ignores Ctrl-C,
# so it keeps relaying the server's shutdown lines until the server closes its output.
exec {out}> >(
  trap '' INT
  while IFS= read -r line; do
    printf '%s\n' "$line"
    case $line in
      "chat server on "*)
        url=${line#chat server on }
        printf '\n  Chat demo running: open %s in two browser tabs (or two browsers).\n' "$url"
        printf '  Press Ctrl-C to stop.\n\n'
        ;;
    esac
  done
)
reader=$!
status=0
"$target_dir/debug/examples/chat_server" "$port" "$root/www" >&"$out" 2>&1 || status=$?
exec {out}>&-
wait "$reader" 2>/dev/null || true
exit "$status"
