"""Shared fixtures: where the shared data lies, and cached reads of it."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CHARTWISE_SHARED_DATA", REPO.parent / "shared" / "data"))
FHIR_DATA = SHARED_DATA / "fhir"


def require_shared() -> Path:
    if not FHIR_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (set CHARTWISE_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return require_shared()


@pytest.fixture(scope="session")
def synthea_dir(shared_data: Path) -> Path:
    return shared_data / "fhir" / "synthea-r4" / "bundles"


@pytest.fixture(scope="session")
def synthea_records(synthea_dir: Path):
    from chartwise.fhir.store import load

    return load(synthea_dir)
