#!/usr/bin/env bash
# The whole test suite as two pytest processes side by side, on one ClickHouse server.
#   scripts/test.sh                 everything: the Airflow-daemon and Spark modules in one
#                                   process, the rest in another (each with its own Airflow home)
#   scripts/test.sh -k warehouse    any pytest arguments: one pytest process, as given
# One pytest keeps one of two cores busy most of the time (it waits on Airflow's daemons, Spark's
# JVM and ClickHouse); two keep both. ClickHouse is started here when it is not running (unless
# CLICKHOUSE_HOST names a server) and stopped at the end if it was started here.
#
# Each process may run NSE_TEST_PROCESS_SECONDS (default 1800; the whole suite takes about 14
# minutes on two cores). A process still running then is sent SIGUSR1: its threads' stacks are
# printed (tests/conftest.py) and it ends, so a hang fails the run with where it hung instead of
# holding it. Both logs are printed when both have ended; the status is the worse of the two.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
PY="$root/.venv/bin/python"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
limit="${NSE_TEST_PROCESS_SECONDS:-1800}"

if (($#)); then
  exec "$PY" -m pytest "$@"
fi

started=0
if [[ -z "${CLICKHOUSE_HOST:-}" ]] && ! scripts/clickhouse-local.sh status >/dev/null 2>&1; then
  scripts/clickhouse-local.sh start || exit 1
  started=1
fi
trap '((started)) && scripts/clickhouse-local.sh stop >/dev/null' EXIT

logs="$root/.local/test-logs"
mkdir -p "$logs"
rm -f "$logs"/*.stacks

# run NAME PYTEST-ARGS...: one bounded pytest process, its output recorded as NAME.
run() {
  local name="$1"
  shift
  NSE_TEST_STACKS="$logs/$name.stacks" timeout --signal=USR1 --kill-after=60 "$limit" \
    "$PY" -m pytest "$@" 2>&1 | record "$name"
  local status=${PIPESTATUS[0]}
  if ((status == 124 || status == 137)); then
    {
      printf '\n%s: stopped before its end (its limit of %s s, or interrupted); ' "$name" "$limit"
      printf 'its threads were at:\n'
      cat "$logs/$name.stacks" 2>/dev/null
    } | record "$name" -a
  fi
  return "$status"
}

# record NAME [-a]: standard input into $logs/NAME.log (-a: appended), and to the terminal too
# when NSE_TEST_LIVE is set.
record() {
  if [[ -n "${NSE_TEST_LIVE:-}" ]]; then
    tee ${2:-} "$logs/$1.log"
  elif [[ -n "${2:-}" ]]; then
    cat >>"$logs/$1.log"
  else
    cat >"$logs/$1.log"
  fi
}

show() {
  printf '\n===== %s =====\n' "$1"
  cat "$logs/$1.log"
}

pids=()
# Interrupted: each `timeout` is told its time is up (SIGALRM), so the pytest processes print
# their stacks and end as at the limit, and both logs are shown.
finish() {
  ((${#pids[@]})) && pkill -ALRM -x timeout -P "$(IFS=,; echo "${pids[*]}")" && wait
  [[ -f "$logs/heavy.log" ]] && show heavy
  exit 1
}
trap finish INT TERM

# The modules that run Airflow's daemons or Spark: together about half of the suite's time.
HEAVY=(tests/test_scheduler.py tests/test_gold_jobs.py tests/test_ui_browser.py)
ignores=()
for module in "${HEAVY[@]}"; do ignores+=(--ignore "$module"); done

NSE_TEST_AIRFLOW_HOME="$root/.local/airflow-test-heavy" run heavy "${HEAVY[@]}" &
pids+=($!)
NSE_TEST_LIVE=1 run rest "${ignores[@]}" &
pids+=($!)
wait "${pids[0]}"
heavy_status=$?
wait "${pids[1]}"
rest_status=$?
pids=()
trap - INT TERM

show heavy
((rest_status == 0)) || printf '\n===== rest: failed, see above =====\n'
((rest_status == 0 && heavy_status == 0)) || exit 1
