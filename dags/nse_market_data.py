"""
### NSE market data (gold)

Turns each trading day's landed data into analytics, once CM bhavcopy, delivery and F&O
bhavcopy of the day are in ClickHouse (their assets; a history load publishes them once for a
whole range, which makes one run for the range):

1. **plan** takes the trade dates from the triggering asset events (or the run's `start` and
   `end`);
2. **gold** runs the gold jobs on Spark in one application through `spark_default` (YARN in
   production, `local[2]` on one machine): `equity_eod`, `equity_indicators`,
   `equity_bars_weekly`, `equity_bars_monthly`, `fo_daily`, `market_daily_summary`, each reading
   only the look-back it needs and rewriting only its dates in the lake's gold layer;
3. **load** checks each gold partition the jobs wrote through the quality gate and replaces its
   date in ClickHouse (`nse.<dataset>`), one mapped task per dataset;
4. **summary** draws the last day's market (breadth, top movers, open-interest build-up) as a
   PNG in the lake; the MLflow run of this DAG run keeps it with every task's numbers.

The formulas are in `include/nse_gold/README.md`.
"""

from __future__ import annotations

from include.nse_airflow.gold import market_data_dag

dag = market_data_dag("nse_market_data", doc_md=__doc__, tags=["nse", "gold", "spark"])
