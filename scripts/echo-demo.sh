#!/usr/bin/env bash
# The echo demo: start the echo server (isosock::accept) on a free loopback port and run the
# client (isosock::dial) against it, printing what they exchanged. (The chat demo in the
# browser is scripts/demo.sh.)
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet --examples
out=$(mktemp)
./target/debug/examples/echo_server 0 >"$out" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -f "$out"' EXIT

for _ in $(seq 1 100); do
  grep -q '^listening on ' "$out" && break
  sleep 0.1
done
url=$(sed -n 's/^listening on \(ws:[^ ]*\).*/\1/p' "$out")
if [ -z "$url" ]; then echo "the echo server did not start:" >&2; cat "$out" >&2; exit 1; fi
echo "echo server (isosock::accept) listening on $url"
./target/debug/examples/echo_client "$url"
