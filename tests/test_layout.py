"""The repository's fhir/ folder never hides fhir.resources; the package layout installs as documented."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_fhir_resources_importable_from_repo_root():
    code = "import fhir.resources.R4B, chartwise.fhir, chartwise.tools, chartwise.agent, chartwise.prompts; print('ok')"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_top_level_fhir_is_extended_here():
    import fhir
    import fhir.resources

    assert any(Path(p).resolve() == (REPO / "fhir").resolve() for p in fhir.__path__) or "site-packages" in fhir.resources.__file__


def test_console_script_and_sample(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "chartwise.cli", "inspect", "--json"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    import json

    manifest = json.loads(proc.stdout)
    assert manifest["read"] == manifest["accepted"] + manifest["quarantined"] == 407
    assert len(manifest["patients"]) == 1


def test_dependencies_point_one_way():
    """fhir imports nothing of tools/agent/CLI; tools imports no agent/CLI; agent imports no CLI."""
    import re

    rules = {"fhir": ("chartwise.tools", "chartwise.agent", "chartwise.cli", "chartwise.commands"),
             "tools": ("chartwise.agent", "chartwise.cli", "chartwise.commands"),
             "agent": ("chartwise.cli", "chartwise.commands")}
    bad = []
    for folder, banned in rules.items():
        for path in (REPO / folder).rglob("*.py"):
            for line in path.read_text().splitlines():
                m = re.match(r"\s*(?:from|import)\s+([\w.]+)", line)
                if m and m.group(1).startswith(banned):
                    bad.append(f"{path.relative_to(REPO)}: {line.strip()}")
    assert not bad, bad
