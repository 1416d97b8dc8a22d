#!/usr/bin/env bash
# The whole test suite as three pytest processes side by side, on one ClickHouse server.
#   scripts/test.sh                 everything, in three groups of modules (below), each process
#                                   with its own Airflow home
#   scripts/test.sh -k warehouse    any pytest arguments: one pytest process, as given
# One pytest keeps one of two cores busy at most, and much of the time less (it waits on
# Airflow's daemons, Spark's JVM and ClickHouse); three keep both. ClickHouse is started here
# when it is not running (unless CLICKHOUSE_HOST names a server) and stopped at the end if it was
# started here.
#
# Each process may run NSE_TEST_PROCESS_SECONDS (default 1800; the whole suite takes about 15
# minutes on two cores). A process still running then is sent SIGUSR1: its threads' stacks are
# printed (tests/conftest.py) and it ends, so a hang fails the run with where it hung instead of
# holding it. The rest's output comes as it runs, the others' when all have ended; the run fails
# when any of them does.
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

# The logs of the processes whose output was not shown as it came.
show_others() {
  for name in scheduler spark; do
    [[ -f "$logs/$name.log" ]] || continue
    printf '\n===== %s =====\n' "$name"
    cat "$logs/$name.log"
  done
}

pids=()
names=(scheduler spark rest)
# Interrupted: each `timeout` is told its time is up (SIGALRM), so the pytest processes print
# their stacks and end as at the limit, and every log is shown.
finish() {
  ((${#pids[@]})) && pkill -ALRM -x timeout -P "$(IFS=,; echo "${pids[*]}")" && wait
  show_others
  exit 1
}
trap finish INT TERM

# The suite in three processes of about equal length (a process's modules run one after another):
# the scheduler's modules, which mostly wait on Airflow's daemons, with some that keep a core
# busy; the Spark and browser modules; and every module no group names. The fault-injection
# suite (tests/reliability) stays in one process: it prints one table of its cases.
SCHEDULER=(tests/test_scheduler.py tests/test_mlflow_plugin.py tests/test_dags.py tests/test_deploy.py
  tests/test_conformance_fo.py tests/test_dag_fo_bhavcopy.py)
SPARK=(tests/test_gold_jobs.py tests/test_dag_market_data.py tests/test_ui_browser.py tests/test_cli.py
  tests/test_dag_option_chain.py tests/test_dag_index_constituents.py)
ignores=()
for module in "${SCHEDULER[@]}" "${SPARK[@]}"; do ignores+=(--ignore "$module"); done

NSE_TEST_AIRFLOW_HOME="$root/.local/airflow-test-scheduler" run scheduler "${SCHEDULER[@]}" &
pids+=($!)
NSE_TEST_AIRFLOW_HOME="$root/.local/airflow-test-spark" run spark "${SPARK[@]}" &
pids+=($!)
NSE_TEST_LIVE=1 run rest "${ignores[@]}" &
pids+=($!)
failed=()
for n in 0 1 2; do
  wait "${pids[n]}" || failed+=("${names[n]}")
done
pids=()
trap - INT TERM

show_others
if ((${#failed[@]})); then
  printf "\n===== failed: %s (the rest's log comes before the others') =====\n" "${failed[*]}"
  exit 1
fi
