"""The web chart viewer in a real browser: Debian's headless Chromium driven by Playwright against
``chartwise serve``'s app on 127.0.0.1 with the sample patient and a scripted model backend.
Screenshots go to test-artifacts/ (gitignored)."""
from __future__ import annotations

import shutil
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _interfaces_fakes import UNSUPPORTED, ScriptedBackend  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]

if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (run scripts/install-browser)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (the Python package) is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    import uvicorn

    from chartwise.cliutil import sample_path
    from chartwise.http_api import create_app
    from chartwise.service import Workspace

    ws = Workspace(backend=ScriptedBackend(), settings={"repair_rounds": 0})
    ws.load(str(sample_path()), check=False)
    app = create_app(ws, token="", allowed_hosts=["127.0.0.1", "localhost"])
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def page(server):
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        context = browser.new_context(viewport={"width": 1440, "height": 1000})
        pg = context.new_page()
        external: list[str] = []
        pg.on("request", lambda r: external.append(r.url) if not r.url.startswith((server, "data:")) else None)
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(server + "/")
        yield pg
        assert not external, f"the viewer fetched outside the server: {external[:3]}"
        assert not errors, f"JavaScript errors: {errors[:3]}"
        browser.close()


def test_timeline_renders_with_charts(page):
    assert "Not a medical device" in page.locator("#banner").inner_text()
    page.wait_for_selector("#trends-vitals svg.trend circle", timeout=30_000)
    assert page.locator("#patient-picker option").count() == 1
    assert "d4f1aab1" in page.locator("#patient-head").inner_text()
    charts = page.locator("svg.trend")
    assert charts.count() >= 5
    assert page.locator("#trends-vitals svg.trend").first.locator("circle").count() >= 2
    assert page.locator("#trends-labs .series").count() >= 1
    assert page.locator(".sec-problems li").count() >= 1
    page.screenshot(path=str(ARTIFACTS / "viewer-timeline.png"), full_page=False)


def test_question_shows_cited_answer_and_citation_opens_resource(page):
    page.fill("#ask-input", "What was the latest blood pressure?")
    page.click("#ask-button")
    page.wait_for_selector("#answer:not([hidden]) #answer-text button.cite", timeout=60_000)
    assert page.locator("#progress li").count() >= 3
    assert "verify:" in page.locator("#progress").inner_text()
    answer = page.locator("#answer-text")
    assert "relevant entry is recorded" in answer.inner_text()
    unsupported = page.locator("#unsupported")
    assert unsupported.is_visible() and UNSUPPORTED in unsupported.inner_text()
    assert UNSUPPORTED not in answer.inner_text()
    page.screenshot(path=str(ARTIFACTS / "viewer-answer.png"))

    cite = answer.locator("button.cite").first
    key = cite.get_attribute("data-key")
    rtype, rid = key.split("#", 1)[0].split("/", 1)
    cite.click()
    page.wait_for_selector("#citation-json", timeout=15_000)
    assert page.locator("#citation-kind").text_content() == "resource"
    body = page.locator("#citation-json").inner_text()
    assert f'"id": "{rid}"' in body and f'"resourceType": "{rtype}"' in body
    assert page.locator("#citation-panel").is_visible()
    page.screenshot(path=str(ARTIFACTS / "viewer-citation.png"))


def test_chart_point_opens_its_resource(page):
    point = page.locator("#trends-vitals svg.trend circle").last
    key = point.get_attribute("data-key")
    point.click()
    page.wait_for_function("k => document.querySelector('#citation-key code')?.textContent === k", arg=key, timeout=15_000)
    assert key.split("/", 1)[1] in page.locator("#citation-json").inner_text()
