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
# The data's clock (docs/AIRFLOW.md): the DAGs are scheduled over the data's days (2013) only, so the
# scheduler starts nothing for today's date; they also start paused, and a 2013 day is run by triggering
# it (printed below). A DAG already in this home's metadata DB keeps its paused state.
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=True
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
  DAGs:        continuous_training, batch_prediction, monitoring  (from $REPO/dags), paused
  log:         $AIRFLOW_HOME/standalone.log     Ctrl-C stops Airflow.

  The data's clock: the data is the year 2013, so nothing is scheduled for today's date. To run a
  2013 day, open a DAG, press Trigger, set the logical date to a 2013 day (e.g. 2013-04-01
  for continuous_training, 2013-04-02 for batch_prediction), keep "Unpause ... on trigger" ticked,
  Trigger. batch_prediction and deploy need Triton with a model: after make demo, run
  flightdeck serve in another terminal. Unpause monitoring to monitor the days scored.

MSG
wait $pid
