#!/usr/bin/env bash
# The whole test suite as two pytest processes side by side, on one ClickHouse server.
#   scripts/test.sh                 everything: the Airflow-daemon and Spark modules in one
#                                   process, the rest in another (each with its own Airflow home)
#   scripts/test.sh -k warehouse    any pytest arguments: one pytest process, as given
# One pytest keeps one of two cores busy most of the time (it waits on Airflow's daemons, Spark's
# JVM and ClickHouse); two keep both. ClickHouse is started here when it is not running (unless
# CLICKHOUSE_HOST names a server) and stopped at the end if it was started here. The second
# process's log is printed when both have finished; the status is the worse of the two.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
PY="$root/.venv/bin/python"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"

if (($#)); then
  exec "$PY" -m pytest "$@"
fi

started=0
if [[ -z "${CLICKHOUSE_HOST:-}" ]] && ! scripts/clickhouse-local.sh status >/dev/null 2>&1; then
  scripts/clickhouse-local.sh start || exit 1
  started=1
fi
trap '((started)) && scripts/clickhouse-local.sh stop >/dev/null' EXIT

# The modules that run Airflow's daemons or Spark: together about half of the suite's time.
HEAVY=(tests/test_scheduler.py tests/test_gold_jobs.py tests/test_ui_browser.py)
ignores=()
for module in "${HEAVY[@]}"; do ignores+=(--ignore "$module"); done

logs="$root/.local/test-logs"
mkdir -p "$logs"
NSE_TEST_AIRFLOW_HOME="$root/.local/airflow-test-heavy" \
  "$PY" -m pytest "${HEAVY[@]}" >"$logs/heavy.log" 2>&1 &
heavy=$!
"$PY" -m pytest "${ignores[@]}"
rest_status=$?
wait "$heavy"
heavy_status=$?
printf '\n===== %s =====\n' "${HEAVY[*]}"
cat "$logs/heavy.log"
((rest_status == 0 && heavy_status == 0)) || exit 1
