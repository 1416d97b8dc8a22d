"""Bulk deals: a client's trades in a day adding up to more than 0.5% of a company's shares.

NSE lists them in `/content/equities/bulk.csv` (the latest day only, with Remarks) and, for
every past day, through its historical API (`optionType=bulk_deals`). Parsing is shared with
block deals in `deals.py`, which documents the shapes and the key.
"""

from __future__ import annotations

from include.nse.sources import deals

DATASET = deals.dataset("bulk_deals", archive_file="bulk.csv", remarks=True, doc=__doc__)
