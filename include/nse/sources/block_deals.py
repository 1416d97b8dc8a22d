"""Block deals: single trades of at least Rs 10 crore in NSE's separate block deal window.

NSE lists them in `/content/equities/block.csv` (the latest day only, no Remarks column; a day
without block deals is one `NO RECORDS` row) and, for every past day, through its historical
API (`optionType=block_deals`). Parsing is shared with bulk deals in `deals.py`, which documents
the shapes and the key.
"""

from __future__ import annotations

from include.nse.sources import deals

DATASET = deals.dataset("block_deals", archive_file="block.csv", remarks=False, doc=__doc__)
