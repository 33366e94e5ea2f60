from __future__ import annotations

import pytest
from strategy_fixtures import write_domain_tree


@pytest.fixture(scope="session")
def dil_root(tmp_path_factory):
    """A small generated domain-incremental tree (2 domains × 3 classes)."""
    return write_domain_tree(tmp_path_factory.mktemp("domains"))


@pytest.fixture(scope="session")
def feature_cache_dir(tmp_path_factory):
    """One feature cache for the session's runs on the pretrained effnet-lite0-clip."""
    return tmp_path_factory.mktemp("feature-cache")
