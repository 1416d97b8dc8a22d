"""A LocalExecutor that imports the pipeline's libraries once, before its workers fork.

Airflow's LocalExecutor forks its worker processes from the scheduler, and each worker forks a
fresh process per task (no exec on Linux): whatever the scheduler has imported before the
workers start, every task inherits for free. Left alone, each task imports the same libraries
again, and they are heavy: Great Expectations alone takes about 5 s of CPU, paid by every task
that runs the quality gate, and polars, pyarrow, clickhouse-driver and the dataset modules add
more. Importing them once here, before `LocalExecutor.start` forks, turns that into a one-off
cost at scheduler start (and shares the memory between workers, copy-on-write).

Only imports happen here: no thread pool is started (polars starts its own on first use, in the
task), so forking stays safe. `NSE_PRELOAD_MODULES` replaces the list (comma-separated; empty
for none). Use it with
`AIRFLOW__CORE__EXECUTOR=include.nse_airflow.executor.PreloadingLocalExecutor`.
"""

from __future__ import annotations

import importlib
import logging
import os
import time

from airflow.executors.local_executor import LocalExecutor

log = logging.getLogger(__name__)

#: What a task of this project imports: the gate's engine, the data libraries, the library's
#: pipeline and every dataset module, the ClickHouse provider, and the adapter the DAG files use.
PRELOAD = (
    "great_expectations",
    "polars",
    "pyarrow.parquet",
    "clickhouse_driver",
    "httpx",
    "nse_clickhouse_provider.hooks.clickhouse",
    "include.nse.pipeline",
    "include.nse.client",
    "include.nse.calendar",
    "include.nse.sources",
    "include.nse_airflow.tasks",
)


def preload(modules: tuple[str, ...] | None = None) -> list[str]:
    """Import `modules` (default `NSE_PRELOAD_MODULES`, else `PRELOAD`) and every dataset's
    module; the ones that failed are logged and skipped, never fatal."""
    if modules is None:
        configured = os.environ.get("NSE_PRELOAD_MODULES")
        modules = PRELOAD if configured is None else tuple(filter(None, configured.split(",")))
    started = time.monotonic()
    done = []
    for name in modules:
        try:
            importlib.import_module(name.strip())
            done.append(name.strip())
        except Exception as e:  # a missing optional module must not stop the scheduler
            log.warning("could not preload %s: %s", name, e)
    if "include.nse.sources" in done:
        from include.nse import sources

        for name in sources.names():
            sources.get(name)
    log.info("preloaded %d modules in %.1f s", len(done), time.monotonic() - started)
    return done


class PreloadingLocalExecutor(LocalExecutor):
    """LocalExecutor whose workers, and so every task, start with the pipeline imported."""

    def start(self) -> None:
        preload()
        super().start()
