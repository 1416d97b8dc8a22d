# Environment for a local Airflow on this project: sourced by the demo (and usable by hand:
# `source scripts/airflow-env.sh; .venv/bin/airflow dags list`).
# Everything binds to 127.0.0.1; parallelism is modest for a 2-core machine.
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PYTHONPATH="$_root${PYTHONPATH:+:$PYTHONPATH}"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$_root/.local/airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$_root/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$_root/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
# LocalExecutor that imports the pipeline's libraries once before its workers fork, so tasks
# do not each pay for Great Expectations, polars and the rest (include/nse_airflow/executor.py).
export AIRFLOW__CORE__EXECUTOR="${AIRFLOW__CORE__EXECUTOR:-include.nse_airflow.executor.PreloadingLocalExecutor}"
export AIRFLOW__CORE__PARALLELISM=4
export AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG=4
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=True
# The compose stack's auth manager: FAB, its users in the metadata database (the demo creates
# one and prints its password; by hand: `airflow users create --role Admin ...`).
export AIRFLOW__CORE__AUTH_MANAGER=airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager
# The connection form's "Test" button (off by default): it runs the hook's test in the api-server.
export AIRFLOW__CORE__TEST_CONNECTION=Enabled
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT="${AIRFLOW_PORT:-8080}"
export AIRFLOW__API__WORKERS=1
export AIRFLOW__API__BASE_URL="http://127.0.0.1:${AIRFLOW_PORT:-8080}"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:${AIRFLOW_PORT:-8080}/execution/"
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=10
export AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK=False
export AIRFLOW__LOGGING__LOGGING_LEVEL=INFO
# Where the pipeline reads and writes.
export NSE_LAKE_ROOT="${NSE_LAKE_ROOT:-$_root/.local/demo/lake}"
export CLICKHOUSE_PORT="${CLICKHOUSE_PORT:-${CH_TCP_PORT:-19000}}"
unset _root
