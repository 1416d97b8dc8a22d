"""Registry of datasets: name -> `Dataset`. Each lives in its own module here."""

from __future__ import annotations

import importlib

from include.nse.sources.base import Column, Dataset

#: dataset name -> module that defines `DATASET`.
_MODULES = {
    "cm_bhavcopy": "include.nse.sources.cm_bhavcopy",
    "cm_delivery": "include.nse.sources.cm_delivery",
    "fo_bhavcopy": "include.nse.sources.fo_bhavcopy",
    "index_constituents": "include.nse.sources.index_constituents",
    "bulk_deals": "include.nse.sources.bulk_deals",
    "block_deals": "include.nse.sources.block_deals",
    "option_chain": "include.nse.sources.option_chain",
    "holidays": "include.nse.sources.holidays",
}


def names() -> list[str]:
    return list(_MODULES)


def get(name: str) -> Dataset:
    try:
        module = _MODULES[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(_MODULES)}") from None
    return importlib.import_module(module).DATASET


__all__ = ["Column", "Dataset", "get", "names"]
