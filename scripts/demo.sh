#!/usr/bin/env bash
# The whole pipeline on this machine, offline: a generated month of NSE files served by the local
# stand-in, a real ClickHouse, an MLflow tracking server, and Airflow (api-server, scheduler,
# dag-processor and triggerer on LocalExecutor, the FAB login with a user of the demo's own)
# backfilling every DAG through `airflow backfill create`: the
# equity bhavcopy for the month, the F&O bhavcopy, deals and index lists for its last days
# (DEMO_*_FROM widen them), the trading calendar once, and one option-chain snapshot.
#   scripts/demo.sh          run (again: it restarts what a previous run left)
#   scripts/demo.sh stop     stop Airflow, the stand-in and MLflow, and ClickHouse if it started it
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
source scripts/airflow-env.sh
PY="$root/.venv/bin/python"
AIRFLOW="$root/.venv/bin/airflow"
state="$root/.local/demo"
FROM="${DEMO_FROM:-2024-07-01}"
TO="${DEMO_TO:-2024-07-31}"
# Muharram: NSE was closed on Wednesday 2024-07-17.
HOLIDAYS="${DEMO_HOLIDAYS:-2024-07-17}"
STANDIN_PORT="${STANDIN_PORT:-8765}"
# Each line: a DAG, and the first and last moments (Mumbai time) of its backfill.
BACKFILLS=(
  "nse_cm_bhavcopy ${FROM}T00:00:00 ${TO}T23:59:59"
  "nse_fo_bhavcopy ${DEMO_FO_FROM:-2024-07-29}T00:00:00 ${TO}T23:59:59"
  "nse_bulk_block_deals ${DEMO_DEALS_FROM:-2024-07-29}T00:00:00 ${TO}T23:59:59"
  "nse_index_constituents ${DEMO_INDEX_FROM:-2024-07-31}T00:00:00 ${TO}T23:59:59"
  "nse_trading_calendar 2024-07-01T00:00:00 2024-07-01T23:59:59"
  "nse_option_chain ${TO}T15:30:00 ${TO}T15:30:00"
)
# The option chain's underlyings in the demo (the stand-in serves their chains as of $TO 15:30).
CHAIN_UNDERLYINGS='["NIFTY", "BANKNIFTY", "FINNIFTY", "MIDCPNIFTY", "NIFTYNXT50"]'
export CLICKHOUSE_PORT="${CH_TCP_PORT:-19000}"
# airflow_settings.yaml reads these when the demo applies it to Airflow.
export NSE_ARCHIVE_BASE_URL="http://127.0.0.1:$STANDIN_PORT"
export NSE_API_BASE_URL="$NSE_ARCHIVE_BASE_URL"
# spark_default's master: the gold jobs run in a local Spark on this machine.
export SPARK_MASTER="local[2]"
GOLD_DAG=nse_market_data
# The scheduler runs only the demo's backfills: a DAG's own latest slot (the machine's date)
# would skip everything, green, for a day the stand-in never served.
export AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE=False
# The UI's login (FAB): made afresh with the metadata database; DEMO_ADMIN_PASSWORD to choose it.
ADMIN_USER="${DEMO_ADMIN_USER:-admin}"
ADMIN_PASSWORD="${DEMO_ADMIN_PASSWORD:-}"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

stop_processes() {
  shopt -s nullglob
  for pidfile in "$state"/pids/*.pid; do
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
      kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -9 -- "-$pid" 2>/dev/null || kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
  done
}

start_bg() {  # name, command...: run in its own process group, log under .local/demo/logs
  local name="$1"; shift
  setsid "$@" >"$state/logs/$name.log" 2>&1 < /dev/null &
  echo $! >"$state/pids/$name.pid"
}

wait_http() {  # url, what, seconds
  for _ in $(seq 1 "$(( $3 * 2 ))"); do
    curl -fs -o /dev/null "$1" && return 0
    sleep 0.5
  done
  echo "$2 did not answer at $1 within $3 s; logs in $state/logs" >&2
  return 1
}

if [[ "${1:-}" == "stop" ]]; then
  stop_processes
  # ClickHouse only if the demo started it: tests may be using a server someone else started.
  if [[ -f "$state/clickhouse-started" ]]; then
    scripts/clickhouse-local.sh stop
    rm -f "$state/clickhouse-started"
  fi
  exit 0
fi

started=$(date +%s)
mkdir -p "$state"/{logs,pids}
stop_processes

say "ClickHouse"
if ! scripts/clickhouse-local.sh status >/dev/null; then
  scripts/clickhouse-local.sh start
  touch "$state/clickhouse-started"
fi
"$PY" -m include.nse warehouse migrate

say "MLflow tracking server (starting)"
# Every DAG run becomes an MLflow run (plugins/nse_mlflow.py); the store is SQLite under the
# demo's state, on a free loopback port unless MLFLOW_PORT is set. Airflow's processes and the
# `mlflow_tracking_uri` variable (airflow_settings.yaml) take the URI from the environment.
MLFLOW_PORT="${MLFLOW_PORT:-$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
export MLFLOW_TRACKING_URI="http://127.0.0.1:$MLFLOW_PORT"
# MLflow's job runner (GenAI evaluation jobs) is not used here: without it the server is one
# process, not eight. Its store starts empty, as Airflow's metadata database does below: each
# DAG run of this demo has its MLflow run, and no run of an earlier demo is left beside them.
rm -rf "$state/mlflow.db" "$state/mlflow-artifacts"
start_bg mlflow env MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false "$root/.venv/bin/mlflow" server --host 127.0.0.1 --port "$MLFLOW_PORT" \
  --workers 1 --backend-store-uri "sqlite:///$state/mlflow.db" \
  --artifacts-destination "$state/mlflow-artifacts"

say "NSE files for $FROM .. $TO (generated, in NSE's formats and URL layout)"
holiday_args=()
for h in ${HOLIDAYS//,/ }; do holiday_args+=(--holiday "$h"); done
"$PY" -m include.nse_standin generate --from "$FROM" --to "$TO" --out "$state/nse" "${holiday_args[@]}"
"$PY" - <<PY
import datetime as dt, json, pathlib
from include.nse_standin.market import IST
from include.nse_standin.option_chain import write_option_chains
at = dt.datetime.fromisoformat("${TO}T15:30:00").replace(tzinfo=IST)
stats = write_option_chains(pathlib.Path("$state/nse"), json.loads('$CHAIN_UNDERLYINGS'), at)
print(json.dumps({"option_chain": stats, "snapshot": at.isoformat()}))
PY

say "NSE stand-in on http://127.0.0.1:$STANDIN_PORT"
start_bg standin "$PY" -m include.nse_standin serve --root "$state/nse" --port "$STANDIN_PORT"
wait_http "http://127.0.0.1:$STANDIN_PORT/" "the stand-in" 20 || true

wait_http "$MLFLOW_TRACKING_URI/health" "the MLflow server" 180
say "MLflow on $MLFLOW_TRACKING_URI"

say "Airflow ($AIRFLOW_HOME)"
# A fresh metadata database each time: a run interrupted half-way leaves no backfill behind to
# block this one. The lake and ClickHouse keep their data; reloading a day replaces it. Task
# logs go with the runs they belong to: kept, a new run's attempt=1.log would hold old ones.
"$AIRFLOW" db reset --yes >"$state/logs/db-reset.log" 2>&1
rm -rf "$AIRFLOW_HOME/logs"
if [[ -z "$ADMIN_PASSWORD" ]]; then
  ADMIN_PASSWORD="$("$PY" -c 'import secrets; print(secrets.token_urlsafe(12))')"
fi
"$AIRFLOW" users create --role Admin --username "$ADMIN_USER" --password "$ADMIN_PASSWORD" \
  --firstname Demo --lastname Admin --email "$ADMIN_USER@example.com" \
  >"$state/logs/users-create.log" 2>&1 \
  || { tail -n 20 "$state/logs/users-create.log" >&2; exit 1; }
"$PY" scripts/apply_airflow_settings.py airflow_settings.yaml >"$state/logs/airflow-settings.log"
"$AIRFLOW" dags reserialize >"$state/logs/reserialize.log" 2>&1

"$AIRFLOW" variables set nse_option_chain_underlyings "$CHAIN_UNDERLYINGS" >/dev/null

say "Backfills"
# Backfill runs wait while their DAG is paused.
# The backfills are created before the scheduler starts: SQLite takes one writer at a time, and
# the scheduler's writes would otherwise make the many inserts of `backfill create` time out.
dags=()
for line in "${BACKFILLS[@]}"; do
  read -r dag from to <<<"$line"
  dags+=("$dag")
  "$AIRFLOW" dags unpause "$dag" >/dev/null
  "$AIRFLOW" backfill create --dag-id "$dag" --from-date "${from}+05:30" --to-date "${to}+05:30" \
    --reprocess-behavior completed --max-active-runs 4 >"$state/logs/backfill-$dag.log" 2>&1 \
    || { tail -n 20 "$state/logs/backfill-$dag.log" >&2; exit 1; }
  echo "  $dag: $(grep -c 'Created backfill Dag run' "$state/logs/backfill-$dag.log") runs, $from .. $to"
done
start_bg api-server "$AIRFLOW" api-server
start_bg scheduler "$AIRFLOW" scheduler
start_bg dag-processor "$AIRFLOW" dag-processor
# Deferred tasks and deadline alerts run in the triggerer.
start_bg triggerer "$AIRFLOW" triggerer
wait_http "http://127.0.0.1:$AIRFLOW__API__PORT/api/v2/monitor/health" "the Airflow api-server" 120
"$PY" scripts/wait_for_runs.py "${dags[@]}" --timeout 1200

say "Gold: $GOLD_DAG on Spark (local[2]) for $FROM .. $TO"
# Paused while the month landed (a paused DAG queues no asset events), then run once for the
# whole month, as a history load's assets would have it do.
"$AIRFLOW" dags unpause "$GOLD_DAG" >/dev/null
gold_run="demo__gold_${FROM}_${TO}_$(date +%s)"
"$AIRFLOW" dags trigger "$GOLD_DAG" --run-id "$gold_run" \
  --conf "{\"start\": \"$FROM\", \"end\": \"$TO\"}" >"$state/logs/trigger-gold.log" 2>&1 \
  || { tail -n 20 "$state/logs/trigger-gold.log" >&2; exit 1; }
"$PY" scripts/wait_for_runs.py "$GOLD_DAG" --run-id "$gold_run" --timeout 900
dags+=("$GOLD_DAG")

say "Rows in ClickHouse, per trade date"
"$PY" - <<PY
from include.nse.cli import clickhouse_client
TABLES = [
    ("fo_bhavcopy", "trade_date"), ("bulk_deals", "trade_date"), ("block_deals", "trade_date"),
    ("index_constituents", "trade_date"), ("holidays", "date"), ("option_chain", "trade_date"),
    ("option_chain_analytics", "trade_date"), ("quality_validations", "trade_date"),
    ("equity_eod", "trade_date"), ("equity_indicators", "trade_date"),
    ("equity_bars_weekly", "trade_date"), ("equity_bars_monthly", "trade_date"),
    ("fo_daily", "trade_date"), ("market_daily_summary", "trade_date"),
]
with clickhouse_client() as ch:
    rows = ch.execute("""
        SELECT b.trade_date, b.rows, b.source_format, d.rows, d.delivered
        FROM (SELECT trade_date, count() AS rows, any(source_format) AS source_format
              FROM nse.cm_bhavcopy WHERE trade_date BETWEEN %(f)s AND %(t)s GROUP BY trade_date) AS b
        LEFT JOIN (SELECT trade_date, count() AS rows, countIf(delivery_qty IS NOT NULL) AS delivered
                   FROM nse.cm_delivery GROUP BY trade_date) AS d USING trade_date
        ORDER BY b.trade_date""", {"f": "$FROM", "t": "$TO"})
    tables = [
        (table, *ch.execute(
            f"SELECT count(), uniqExact({day}), min({day}), max({day}) FROM nse.{table}"
        )[0])
        for table, day in TABLES
    ]
print(f"{'trade_date':<12}{'bhavcopy':>10}  {'format':<8}{'delivery':>10}{'with qty':>10}")
for day, n, fmt, dn, dq in rows:
    print(f"{day.isoformat():<12}{n:>10}  {fmt:<8}{dn:>10}{dq:>10}")
print(f"{len(rows)} trade dates, {sum(r[1] for r in rows)} bhavcopy rows")
print()
print(f"{'table':<28}{'rows':>10}{'dates':>7}  first .. last")
for table, n, dates, first, last in tables:
    print(f"{'nse.' + table:<28}{n:>10}{dates:>7}  {first} .. {last}")
PY

say "MLflow: one run per DAG run"
# The listener records a run when it ends, from a background process: give the last ones time.
"$PY" - "${dags[@]}" <<PY
import sys, time
from mlflow import MlflowClient

from airflow.models.dagrun import DagRun
from airflow.utils.session import create_session
from sqlalchemy import func, select

client = MlflowClient("$MLFLOW_TRACKING_URI")
deadline = time.monotonic() + 180
while True:
    with create_session() as session:
        expected = dict(session.execute(
            select(DagRun.dag_id, func.count()).where(DagRun.dag_id.in_(sys.argv[1:]),
            DagRun.state.in_(["success", "failed"])).group_by(DagRun.dag_id)).all())
    found = {}
    for dag_id in expected:
        experiment = client.get_experiment_by_name(dag_id)
        runs = client.search_runs([experiment.experiment_id]) if experiment else []
        found[dag_id] = sum(r.info.status in ("FINISHED", "FAILED") for r in runs)
    if found == expected or time.monotonic() > deadline:
        break
    time.sleep(2)
for dag_id, n in expected.items():
    print(f"  {dag_id:<28} {found[dag_id]:>3} MLflow runs for {n} finished DAG runs")
sys.exit(0 if found == expected else 1)
PY

chart="$NSE_LAKE_ROOT/gold/market_summary_chart/trade_date=$TO/market_summary.png"
[[ -s "$chart" ]] || { echo "the gold run drew no market summary at $chart" >&2; exit 1; }

cat <<EOF

Done in $(( $(date +%s) - started )) s. Where to look next:
  Airflow UI       http://127.0.0.1:$AIRFLOW__API__PORT  (DAGs ${dags[*]})
                   login: user $ADMIN_USER, password $ADMIN_PASSWORD
  ClickHouse       native 127.0.0.1:$CLICKHOUSE_PORT, database nse
  Lake             $NSE_LAKE_ROOT  (bronze/ as served, silver/ Parquet, gold/ analytics)
  Market summary   $chart
  NSE stand-in     http://127.0.0.1:$STANDIN_PORT  serving $state/nse
  MLflow           $MLFLOW_TRACKING_URI  (an experiment per DAG, a run per DAG run)
  Logs             $state/logs
  One day by hand  CLICKHOUSE_PORT=$CLICKHOUSE_PORT NSE_ARCHIVE_BASE_URL=http://127.0.0.1:$STANDIN_PORT \\
                   .venv/bin/python -m include.nse ingest cm_bhavcopy --date $FROM
  Stop everything  make demo-stop
EOF
