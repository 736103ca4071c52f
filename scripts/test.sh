#!/usr/bin/env bash
# Install Debian's influxdb (and chromium, for the report test; nodejs and npm, to run
# Grafana's panel transformations) if needed, and Grafana's data library from npm; start
# influxd on a free loopback port with its data in a temp dir, run the whole pytest suite
# against it, and stop it whatever happens.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-.venv}
cd "$here"

# Debian packages the tests need: influxdb (the real server), chromium (renders report.html);
# nodejs and npm run Grafana's transformations (those tests skip, saying so, if they cannot
# be installed: they are not worth losing the rest of the suite for)
sudo_=""
[ "$(id -u)" -eq 0 ] || sudo_="sudo"
apt_install() {
  $sudo_ apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq "$@" >/dev/null
}
missing=()
command -v influxd >/dev/null 2>&1 || missing+=(influxdb)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian's ${missing[*]} ..."
  apt_install "${missing[@]}"
fi
node_missing=()
command -v node >/dev/null 2>&1 || node_missing+=(nodejs)
command -v npm >/dev/null 2>&1 || node_missing+=(npm)
if [ ${#node_missing[@]} -gt 0 ]; then
  echo "installing Debian's ${node_missing[*]} ..."
  apt_install "${node_missing[@]}" || echo "WARNING: could not install ${node_missing[*]}"
fi

# Grafana's data library (the version of the compose file's Grafana, tests/grafana/package.json)
grafana_dir=.cache/grafana-data
if ! cmp -s tests/grafana/package.json "$grafana_dir/package.json" \
    || [ ! -f "$grafana_dir/node_modules/@grafana/data/package.json" ]; then
  echo "installing Grafana's data library (npm) ..."
  rm -rf "$grafana_dir" && mkdir -p "$grafana_dir"
  if cp tests/grafana/package.json "$grafana_dir/package.json" \
      && (cd "$grafana_dir" && npm install --no-audit --no-fund --loglevel=error >/dev/null); then
    :
  else
    echo "WARNING: Grafana's data library not installed; its tests will be skipped"
    rm -rf "$grafana_dir"
  fi
fi
if [ -f "$grafana_dir/node_modules/@grafana/data/package.json" ]; then
  export GRAFANA_NODE_MODULES="$here/$grafana_dir/node_modules" REQUIRE_GRAFANA_DATA=1
fi

influx_dir=$(mktemp -d)
cleanup() { bash scripts/influxd.sh stop "$influx_dir" || true; rm -rf "$influx_dir"; }
trap cleanup EXIT
INFLUX_URL=$(bash scripts/influxd.sh start "$influx_dir" | tail -n 1)
echo "influxd $(influxd version 2>/dev/null | head -n 1) at $INFLUX_URL"
export INFLUX_URL REQUIRE_INFLUX=1
"$venv/bin/python" -m pytest -q "$@"
