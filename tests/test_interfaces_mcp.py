"""The MCP server over stdio, driven by the official SDK's client: tools with schemas, calls, resources."""
from __future__ import annotations

import os
import sys

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

PID = "d4f1aab1-73e6-4d51-98eb-e1556406b2a3"


async def _session_checks() -> None:
    env = {**os.environ, "CHARTWISE_BACKEND": "none", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    params = StdioServerParameters(command=sys.executable, args=["-m", "chartwise.cli", "mcp"], env=env)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as s:
        init = await s.initialize()
        assert init.serverInfo.name == "chartwise" and "citation" in (init.instructions or "")
        tools = {t.name: t for t in (await s.list_tools()).tools}
        for name in ("list_patients", "timeline", "evidence", "cite", "ask", "summarize", "literature",
                     "get_resource", "search_facts", "load_source"):
            assert name in tools, name
        assert tools["ask"].inputSchema["required"] == ["question"]
        assert "patient" in tools["search_facts"].inputSchema["properties"]
        assert "key" in tools["get_resource"].inputSchema["properties"]
        assert tools["search_facts"].description

        pats = await s.call_tool("list_patients", {})
        assert not pats.isError and pats.structuredContent["result"][0]["id"] == PID

        tl = await s.call_tool("timeline", {"patient": PID})
        assert not tl.isError and f"# Timeline of patient {PID}" in tl.content[0].text

        ev = await s.call_tool("evidence", {"question": "blood pressure", "budget": 400})
        items = ev.structuredContent["items"]
        assert items and all("/" in i["citation"] for i in items)

        hit = await s.call_tool("get_resource", {"key": items[0]["citation"], "patient": PID})
        assert not hit.isError and hit.structuredContent["items"][0]["key"] == items[0]["citation"]

        ans = await s.call_tool("ask", {"question": "What was the latest blood pressure?"})
        res = ans.structuredContent
        assert not ans.isError and res["citations"] and all(c["verified"] for c in res["citations"])
        assert f"[{res['citations'][0]['key']}]" in res["answer"]

        bad = await s.call_tool("timeline", {"patient": "nope"})
        assert bad.isError and "no patient with that id" in bad.content[0].text

        uris = {str(r.uri) for r in (await s.list_resources()).resources}
        assert {"chartwise://patients", f"chartwise://patient/{PID}"} <= uris
        r = await s.read_resource(f"chartwise://patient/{PID}/timeline")
        assert "Systolic" in r.contents[0].text or "Blood Pressure" in r.contents[0].text


async def _with_timeout() -> None:
    with anyio.fail_after(120):
        await _session_checks()


def test_mcp_stdio_lists_and_calls_tools():
    anyio.run(_with_timeout)
