#!/usr/bin/env bash
# `make airflow`: the Airflow UI with flightdeck's DAGs (airflow standalone: api-server,
# scheduler, dag-processor, triggerer) on SQLite, with its home under FLIGHTDECK_HOME.
# Prints the URL and the login once the UI answers; Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
export FLIGHTDECK_HOME=${FLIGHTDECK_HOME:-$REPO/.flightdeck}
export AIRFLOW_HOME=${AIRFLOW_HOME:-$FLIGHTDECK_HOME/airflow}
export AIRFLOW__CORE__DAGS_FOLDER=$REPO/dags
# The flightdeck plugin: the report pages behind the stage tasks' extra links (docs/AIRFLOW.md, "Reports").
export AIRFLOW__CORE__PLUGINS_FOLDER=$REPO/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__API__PORT=${AIRFLOW_PORT:-8080}
export AIRFLOW__API__HOST=${AIRFLOW__API__HOST:-127.0.0.1}
# Links in the UI (task logs) point here.
export AIRFLOW__API__BASE_URL=http://localhost:$AIRFLOW__API__PORT
mkdir -p "$AIRFLOW_HOME"
PATH=$REPO/.venv/bin:$PATH

airflow standalone > "$AIRFLOW_HOME/standalone.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT INT TERM

passwords=$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated
for _ in $(seq 1 600); do
  kill -0 $pid 2>/dev/null || { echo "airflow standalone exited; see $AIRFLOW_HOME/standalone.log" >&2; tail -20 "$AIRFLOW_HOME/standalone.log" >&2; exit 1; }
  if [ -s "$passwords" ] && python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)' \
       "http://127.0.0.1:$AIRFLOW__API__PORT/api/v2/monitor/health" 2>/dev/null; then
    break
  fi
  sleep 1
done
password=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['admin'])" "$passwords")
cat <<MSG

  Airflow UI:  http://localhost:$AIRFLOW__API__PORT
  login:       admin / $password   (SimpleAuthManager; stored in $passwords)
  DAGs:        continuous_training, batch_prediction, monitoring  (from $REPO/dags)
  log:         $AIRFLOW_HOME/standalone.log     Ctrl-C stops Airflow.

MSG
wait $pid
