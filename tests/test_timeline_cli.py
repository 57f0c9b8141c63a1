"""``chartwise timeline`` in its three formats, on the bundled sample patient."""
from __future__ import annotations

import json
import re

from chartwise.cli import main
from chartwise.cliutil import sample_path
from chartwise.fhir.citations import find_citations
from chartwise.fhir.store import load
from chartwise.fhir.timeline import Timeline, build_timeline, trend_of, Point


def test_json_format_is_the_timeline_contract(tmp_path, capsys):
    out = tmp_path / "t.json"
    assert main(["timeline", "--format", "json", "-o", str(out)]) == 0
    timeline = Timeline.model_validate(json.loads(out.read_text()))
    record = load(sample_path()).patient()
    assert timeline == build_timeline(record)
    assert timeline.labs and timeline.vitals and timeline.problems and timeline.medications


def test_markdown_cites_every_line(capsys):
    assert main(["timeline"]) == 0
    text = capsys.readouterr().out
    record = load(sample_path()).patient()
    bullets = [line for line in text.splitlines() if line.startswith("- ") and "none in the record" not in line]
    assert bullets
    for line in bullets:
        keys = find_citations(line)
        assert keys, line
        for key in keys:
            assert record.get(key) is not None, key


def test_html_is_self_contained_with_charts_and_raw_resources(tmp_path):
    out = tmp_path / "t.html"
    assert main(["timeline", "--format", "html", "-o", str(out)]) == 0
    page = out.read_text()
    assert "<svg" in page and "polyline" in page
    assert "http://" not in page.split('<script type="application/json"')[0].replace('xmlns="http://www.w3.org/2000/svg"', "")
    raw = json.loads(page.split('id="raw-data">', 1)[1].split("</script>", 1)[0].replace("<\\/", "</"))
    cited = set(re.findall(r'data-key="([^"]+)"', page))
    assert cited and cited <= set(raw)
    assert "not a medical device" in page


def test_trend_rules():
    pts = lambda *v: [Point(date=None, value=x, key=f"Observation/{i}") for i, x in enumerate(v)]  # noqa: E731
    assert trend_of(pts(5)) == "single"
    assert trend_of(pts(5, 5.2)) == "stable"
    assert trend_of(pts(5, 6)) == "up"
    assert trend_of(pts(6, 5)) == "down"


def test_several_patients_need_patient_flag(synthea_dir, capsys):
    assert main(["timeline", str(synthea_dir)]) == 2
    err = capsys.readouterr().err
    assert "40 patients" in err and "--patient" in err


def test_find_citations_skips_lab_name_brackets():
    text = ("Albumin [Mass/volume] in Serum 3.8 g/dL [Observation/abc-1][Condition/x]; note [DocumentReference/n1#10-42] "
            "and [PMID:12345678, Observation/def]; not [Foo/bar] nor [DocumentReference/n1#50-10]")
    assert find_citations(text) == ["Observation/abc-1", "Condition/x", "DocumentReference/n1#10-42", "PMID:12345678", "Observation/def"]
