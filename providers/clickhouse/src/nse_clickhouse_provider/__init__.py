"""ClickHouse for Airflow: the `clickhouse` connection type and a hook that tags every query."""

__version__ = "1.1.0"
