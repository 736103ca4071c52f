#!/bin/sh
# Refuses to let the stack start while a secret is unset or still holds .env.example's
# placeholder (a value beginning with "change-me"). docker-compose.yml runs it as the
# one-shot service check-env, which every other service waits for
# (condition: service_completed_successfully): exit 1 stops them all.
# Run by hand too:  (set -a; . ./.env; sh docker/check-env.sh)
# Required secrets (must be set, not a placeholder) and optional ones (may be empty):
REQUIRED="INFLUX_ADMIN_PASSWORD INFLUX_ADMIN_TOKEN INFLUX_TWIN_PASSWORD INFLUX_GRAFANA_PASSWORD GRAFANA_ADMIN_PASSWORD"
OPTIONAL="GRAFANA_TOKEN"

status=0
for name in $REQUIRED $OPTIONAL; do
    eval "value=\${$name:-}"
    case " $REQUIRED " in
        *" $name "*) required=1 ;;
        *) required=0 ;;
    esac
    if [ -z "$value" ]; then
        if [ "$required" = 1 ]; then
            echo "check-env: $name is not set: put a secret in .env" >&2
            status=1
        fi
        continue
    fi
    case "$value" in
        change-me*)
            echo "check-env: $name still holds the placeholder from .env.example: replace it in .env (e.g. openssl rand -hex 32)" >&2
            status=1
            ;;
    esac
done
# InfluxDB refuses passwords shorter than 8 characters
for name in INFLUX_ADMIN_PASSWORD INFLUX_TWIN_PASSWORD INFLUX_GRAFANA_PASSWORD; do
    eval "value=\${$name:-}"
    if [ -n "$value" ] && [ "${#value}" -lt 8 ]; then
        echo "check-env: $name is shorter than 8 characters (InfluxDB refuses it)" >&2
        status=1
    fi
done
if [ "$status" = 0 ]; then
    echo "check-env: secrets set"
fi
exit "$status"
