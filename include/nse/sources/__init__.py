"""Registry of datasets: name -> `Dataset`, each defined in its own module here.

`include.nse.catalog` names them and says how each one's tasks are shaped, without importing
them; `get` imports a dataset's module and checks that it agrees with its shape.
"""

from __future__ import annotations

import importlib

from include.nse.catalog import names, shape
from include.nse.sources.base import Column, Dataset, Publication


def get(name: str) -> Dataset:
    declared = shape(name)
    dataset = importlib.import_module(declared.module).DATASET
    publication = dataset.publication
    actual = {
        "host": publication.host,
        "history": type(publication).fetch_history is not Publication.fetch_history,
        "items": publication.items_param,
        "per_item": publication.per_item,
        "after": tuple(step.name for step in dataset.after),
        "segment": dataset.segment,
    }
    expected = {key: getattr(declared, key) for key in actual}
    if actual != expected:
        raise TypeError(f"dataset {name} is defined as {actual}, its shape says {expected}")
    return dataset


__all__ = ["Column", "Dataset", "get", "names", "shape"]
