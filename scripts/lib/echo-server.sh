# Sourced by the scripts that need the example echo server (examples/echo_server.rs).
#
# start_echo_server BINARY NAME: starts BINARY on a free loopback port, waits up to 10 s for
# its `listening on ws://...` line, and sets ECHO_URL and ECHO_PID; the server is stopped when
# the script exits. NAME prefixes the error messages.

start_echo_server() {
    local bin=$1 name=$2
    ECHO_OUT="$(mktemp)"
    "$bin" 0 >"$ECHO_OUT" 2>/dev/null &
    ECHO_PID=$!
    trap stop_echo_server EXIT
    ECHO_URL=""
    for _ in $(seq 1 100); do
        ECHO_URL="$(sed -n 's/^listening on \(ws:\/\/[^ ]*\).*/\1/p' "$ECHO_OUT" | head -n 1)"
        [ -n "$ECHO_URL" ] && return 0
        if ! kill -0 "$ECHO_PID" 2>/dev/null; then
            echo "$name: the echo server exited before listening" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "$name: the echo server did not print its address within 10 s" >&2
    exit 1
}

stop_echo_server() {
    kill "$ECHO_PID" 2>/dev/null || true
    wait "$ECHO_PID" 2>/dev/null || true
    rm -f "$ECHO_OUT"
}
