#!/bin/bash
# Runs once, when the influxdb container initialises an empty data volume (the influxdb:2
# image runs /docker-entrypoint-initdb.d/*.sh after its setup, with the influx CLI already
# configured and DOCKER_INFLUXDB_INIT_BUCKET_ID exported). Maps the InfluxQL database
# INFLUX_DATABASE (retention policy autogen) to the bucket, so that the dashboards' InfluxQL
# queries (and any 1.x client) find the twin's data.
set -euo pipefail

influx v1 dbrp create \
    --org "${DOCKER_INFLUXDB_INIT_ORG}" \
    --bucket-id "${DOCKER_INFLUXDB_INIT_BUCKET_ID}" \
    --db "${INFLUX_DATABASE}" \
    --rp autogen \
    --default
echo "dbrp: database ${INFLUX_DATABASE} -> bucket ${DOCKER_INFLUXDB_INIT_BUCKET}"
