#!/bin/bash
# Runs once, when the influxdb container initialises an empty data volume (after setup, with
# the influx CLI configured with the admin token and DOCKER_INFLUXDB_INIT_BUCKET_ID exported).
# Creates the two credentials the other services use, so that neither gets the admin token:
#   INFLUX_TWIN_USER     may only write the bucket (the twin records with it)
#   INFLUX_GRAFANA_USER  may only read the bucket (Grafana's datasource)
# InfluxDB 2.x generates API token values itself (`influx auth create` cannot take one from
# .env), so these are v1 authorizations: user and password from .env, accepted by the
# InfluxQL /query and /write endpoints the dashboards and the twin (api: v1) use, on the
# database that create-dbrp.sh maps to the bucket.
set -euo pipefail

influx v1 auth create \
    --org "${DOCKER_INFLUXDB_INIT_ORG}" \
    --username "${INFLUX_TWIN_USER}" \
    --password "${INFLUX_TWIN_PASSWORD}" \
    --write-bucket "${DOCKER_INFLUXDB_INIT_BUCKET_ID}" \
    --description "dms-twin: writes the twin's bucket"
influx v1 auth create \
    --org "${DOCKER_INFLUXDB_INIT_ORG}" \
    --username "${INFLUX_GRAFANA_USER}" \
    --password "${INFLUX_GRAFANA_PASSWORD}" \
    --read-bucket "${DOCKER_INFLUXDB_INIT_BUCKET_ID}" \
    --description "Grafana: reads the twin's bucket"
echo "auth: ${INFLUX_TWIN_USER} writes, ${INFLUX_GRAFANA_USER} reads bucket ${DOCKER_INFLUXDB_INIT_BUCKET}"
