"""Fixtures shared by the dataset tests: the catalog and one small built dataset per session."""

from __future__ import annotations

import pytest

from helpers.data.build import build_dataset
from helpers.data.catalog import load_catalog

SMALL = dict(train_flows=60, dev_flows=12, ood_flows=6)


@pytest.fixture(scope="session")
def catalog():
    return load_catalog()


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "a"
    build_dataset(out, seed=3, profile="smoke", progress=False, **SMALL)
    return out


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """A tiny English-only dataset for evaluation tests (BM25 and small models)."""
    out = tmp_path_factory.mktemp("tiny") / "ds"
    build_dataset(out, seed=2, profile="smoke", progress=False, train_flows=20, dev_flows=10, ood_flows=5,
                  languages=())
    return out
