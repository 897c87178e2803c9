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
