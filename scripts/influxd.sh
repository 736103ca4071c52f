#!/usr/bin/env bash
# Run a throw-away InfluxDB 1.x server for tests and local runs, with everything in one directory.
#
#   scripts/influxd.sh start DIR   # writes DIR/influxdb.conf, starts influxd, prints its URL last
#   scripts/influxd.sh stop DIR    # stops the server started in DIR and waits for it to exit
#   scripts/influxd.sh start DIR --auth   # the same with authentication enabled: create the
#                                         # first (admin) user with CREATE USER ... WITH ALL
#                                         # PRIVILEGES, which 1.x allows without credentials
#
# Both the HTTP API and the RPC (backup/restore) listener are bound to 127.0.0.1 on free
# ports, so several servers (e.g. parallel CI jobs) can run side by side without clashing
# with a system-wide InfluxDB on the default ports.
set -euo pipefail

usage() {
    echo "usage: $0 start DIR [--auth] | stop DIR" >&2
    exit 2
}

free_port() {
    # Let the kernel pick a free port; there is a small race until influxd binds it,
    # which is acceptable for a test helper.
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

ping_status() {
    # python3 rather than curl: a fresh machine may lack curl, never python3.
    python3 - "$1" <<'PY' 2>/dev/null || true
import sys, urllib.request
try:
    print(urllib.request.urlopen(sys.argv[1] + "/ping", timeout=2).status)
except Exception:
    print(0)
PY
}

start() {
    local dir auth=false
    if [[ "${2:-}" == "--auth" ]]; then
        auth=true
    elif [[ -n "${2:-}" ]]; then
        usage
    fi
    mkdir -p "$1"
    dir=$(cd "$1" && pwd)
    local pid_file="$dir/influxd.pid"
    if [[ -f "$pid_file" ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
        echo "influxd already running in $dir (pid $(cat "$pid_file"))" >&2
        exit 1
    fi

    local http_port rpc_port
    http_port=$(free_port)
    rpc_port=$(free_port)
    while [[ "$rpc_port" == "$http_port" ]]; do
        rpc_port=$(free_port)
    done

    # Debian's 1.6 build spells the switch "reporting-enabled" (default off); upstream 1.x
    # uses "reporting-disabled". Unknown keys are ignored, so both are set.
    # The _internal monitor database is switched off: tests should only see their own data.
    cat >"$dir/influxdb.conf" <<EOF
reporting-disabled = true
reporting-enabled = false
bind-address = "127.0.0.1:$rpc_port"

[meta]
  dir = "$dir/meta"

[data]
  dir = "$dir/data"
  wal-dir = "$dir/wal"
  query-log-enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:$http_port"
  log-enabled = false
  auth-enabled = $auth

[logging]
  level = "warn"
  suppress-logo = true
EOF

    influxd -config "$dir/influxdb.conf" >"$dir/influxd.log" 2>&1 &
    local pid=$!
    echo "$pid" >"$pid_file"

    local url="http://127.0.0.1:$http_port"
    local deadline=$((SECONDS + 30))
    local problem=""
    until [[ "$(ping_status "$url")" == "204" ]]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            problem="influxd exited before answering $url/ping"
        elif ((SECONDS >= deadline)); then
            problem="influxd did not answer $url/ping within 30 s"
        fi
        if [[ -n "$problem" ]]; then
            echo "$problem; log follows:" >&2
            cat "$dir/influxd.log" >&2
            kill "$pid" 2>/dev/null || true
            rm -f "$pid_file"
            exit 1
        fi
        sleep 0.2
    done
    echo "$url"
}

stop() {
    local pid_file="$1/influxd.pid"
    if [[ ! -f "$pid_file" ]]; then
        echo "no influxd.pid in $1; nothing to stop" >&2
        return 0
    fi
    local pid
    pid=$(cat "$pid_file")
    if kill "$pid" 2>/dev/null; then
        # influxd is not our child here (started by an earlier invocation), so poll.
        local deadline=$((SECONDS + 30))
        while kill -0 "$pid" 2>/dev/null; do
            if ((SECONDS >= deadline)); then
                echo "influxd (pid $pid) did not stop within 30 s; sending SIGKILL" >&2
                kill -9 "$pid" 2>/dev/null || true
                break
            fi
            sleep 0.1
        done
    fi
    rm -f "$pid_file"
}

[[ $# -eq 2 || ( $# -eq 3 && "$1" == "start" ) ]] || usage
case "$1" in
    start) start "$2" "${3:-}" ;;
    stop) stop "$2" ;;
    *) usage ;;
esac
