#!/bin/sh
# Entry of the twin's image in docker-compose.yml (mounted read-only at /twin-live.sh):
#
#   sh /twin-live.sh run             the twin service: exec
#       twin run "$TWIN_SCENARIO" --live --speed "$TWIN_SPEED" --record influx --no-progress
#           --set "recording.influx={...}" TWIN_ARGS...
#   sh /twin-live.sh dashboards DIR  the dashboards service (before Grafana starts): exec
#       python -m twin.dashboards --scenario "$TWIN_SCENARIO" --out DIR
#           plus the --until and --set words of TWIN_ARGS,
#       so that the dashboards open on this run's time range (its start, and its end or
#       start + --until), with its voltage band and step.
#
# TWIN_ARGS holds extra `twin run` arguments as *shell words*: quotes and backslashes work
# as in a shell (--set "kpis.voltage_band_pu=[0.94, 1.06]" is one word), and so do $ and
# backticks: it is evaluated (eval), like a line of your own shell. It comes from your own
# .env; put nothing there you would not type yourself.
# Read from the environment (docker-compose.yml passes them): TWIN_SCENARIO, TWIN_SPEED,
# TWIN_ARGS, INFLUX_DATABASE, INFLUX_TWIN_USER. The twin's password is not read here: the
# twin reads INFLUX_TWIN_PASSWORD itself (password_env).
set -eu

die() {
    echo "twin-live: $*" >&2
    exit 2
}

: "${TWIN_SCENARIO:?not set (docker-compose.yml passes it)}"
TWIN_ARGS=${TWIN_ARGS:-}
# TWIN_ARGS -> "$@"; checked first (sh -n: parsed, nothing run) so that an unbalanced quote
# gets a message naming the variable
if ! sh -n -c "set -- $TWIN_ARGS" 2>/dev/null; then
    die "TWIN_ARGS is not valid shell words (an unbalanced quote?): $TWIN_ARGS"
fi
mode=${1:-}
[ "$#" -gt 0 ] && shift
out=${1:-}
eval "set -- $TWIN_ARGS"

case "$mode" in
    run)
        : "${TWIN_SPEED:?not set (docker-compose.yml passes it)}"
        : "${INFLUX_DATABASE:?not set (docker-compose.yml passes it)}"
        : "${INFLUX_TWIN_USER:?not set (docker-compose.yml passes it)}"
        # the compose InfluxDB 2.x through its v1 /write, with the twin's write-only user
        influx="{url: 'http://influxdb:8086', api: v1, database: '$INFLUX_DATABASE',"
        influx="$influx username: '$INFLUX_TWIN_USER', password_env: INFLUX_TWIN_PASSWORD}"
        exec twin run "$TWIN_SCENARIO" --live --speed "$TWIN_SPEED" --record influx \
            --no-progress --set "recording.influx=$influx" "$@"
        ;;
    dashboards)
        [ -n "$out" ] || die "usage: twin-live.sh dashboards DIR"
        # keep the words that change the range (or the band, step, grid): --until and --set,
        # as `twin run` reads them (VALUE as the next word, or after =); the last --until wins
        for word in "$@"; do
            shift
            case "${take:-}" in
                until) set -- "$@" --until "$word"; take=; continue ;;
                set) set -- "$@" --set "$word"; take=; continue ;;
            esac
            case "$word" in
                --until) take=until ;;
                --set) take=set ;;
                --until=*) set -- "$@" --until "${word#--until=}" ;;
                --set=*) set -- "$@" --set "${word#--set=}" ;;
            esac
        done
        exec python -m twin.dashboards --scenario "$TWIN_SCENARIO" --out "$out" "$@"
        ;;
    *)
        die "usage: twin-live.sh run | twin-live.sh dashboards DIR"
        ;;
esac
