#!/usr/bin/env bash
# permessage-deflate benchmark: isosock's echo server against yawc, Node `ws` and Python
# `websockets` (tests/interop/bench_echo_server.{mjs,py}) in each compression mode, loaded by
# the isosock client in the same mode (`isosock-bench compression`): compression ratio, msgs/s
# and CPU per message; then isosock's memory per connection in each mode at 10,000
# connections, server and client (`isosock-bench idle-memory --compression ...`).
#
# Arguments go to `isosock-bench compression` (--quick for a smoke run; see `isosock-bench
# help`); --no-memory skips the memory part. Tables are printed as markdown and kept in
# target/bench/compression.md and compression-memory.md. Benchmarks measure: nothing here
# asserts a timing. Needs what scripts/setup.sh installs; installs nothing itself.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "bench-compression.sh: $*" >&2; exit 1; }
[ -d tests/interop/node_modules/ws ] || die "tests/interop/node_modules/ws is missing; run scripts/setup.sh"
[ -x .deps/venv/bin/python ] || die ".deps/venv is missing; run scripts/setup.sh"
command -v node >/dev/null || die "node is missing; run scripts/setup.sh"
command -v ss >/dev/null || die "ss (iproute2) is missing: it counts the bytes on the wire"

memory=1
args=()
for a in "$@"; do
  if [ "$a" = --no-memory ]; then memory=0; else args+=("$a"); fi
done

cargo build --quiet --release -p isosock-bench
./target/release/isosock-bench compression "${args[@]}"
if [ "$memory" = 1 ]; then
  ./target/release/isosock-bench idle-memory --compression disabled,no-context-takeover,context-takeover
fi
