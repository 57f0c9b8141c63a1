"""Fixtures the agent tests share; a test module imports them to switch them on (both are autouse)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module", autouse=True)
def _index_in_tmp(tmp_path_factory):
    """The real retrieval tools (``chartwise.tools``) over a scratch index, one per test module."""
    from chartwise.tools import IndexSettings, configure

    configure(IndexSettings(path=tmp_path_factory.mktemp("index")))
    yield
    configure(None)


@pytest.fixture(autouse=True)
def _audit_to_tmp(tmp_path, monkeypatch):
    """Audit entries go to the test's own folder, never the user's."""
    monkeypatch.setenv("CHARTWISE_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
