"""The MCP server (``chartwise mcp``): Chartwise's tools and patients for MCP clients.

Tools (each with a JSON schema):

* the typed retrieval tools of the record (``search_facts``, ``latest``, ``get_resource``, ... —
  whatever ``chartwise.tools`` provides), each with an extra ``patient`` argument;
* ``list_patients``, ``timeline``, ``evidence``, ``cite``;
* ``ask``, ``summarize``, ``literature`` — the agent's cited results (progress notifications while
  the graph runs, when the client sends a progress token);
* ``load_source`` — read another server-side path (honours ``CHARTWISE_ALLOWED_ROOTS``).

Resources: ``chartwise://patients`` (the list), ``chartwise://patient/{id}`` (one patient's summary)
and ``chartwise://patient/{id}/timeline`` (the cited timeline as Markdown).

Transports: stdio (default) and streamable HTTP (``--transport http``, ``/mcp`` on 127.0.0.1).
"""
from __future__ import annotations

import inspect
import json
from typing import Annotated, Any, Literal

import anyio
from mcp.server.fastmcp import Context, FastMCP
from pydantic import Field

from chartwise.service import Workspace, one_line

INSTRUCTIONS = (
    "Chartwise reads FHIR R4 patient records. Every statement it returns carries a citation key in square "
    "brackets: Type/id for a FHIR resource, DocumentReference/id#start-end for a note span, PMID:n for a paper. "
    "Keep those citations when you pass facts on. Call list_patients first to get patient ids. "
    "Chartwise is not a medical device: its output needs clinician review."
)

PatientArg = Annotated[str | None, Field(default=None, description="patient id (default: the only patient of the source)")]
SourceArg = Annotated[str | None, Field(default=None, description="source id from load_source (default: the default source)")]


def _tool_error(err: Exception) -> Exception:
    from mcp.server.fastmcp.exceptions import ToolError

    return ToolError(one_line(err))


async def _threaded(fn: Any, *args: Any, **kw: Any) -> Any:
    try:
        return await anyio.to_thread.run_sync(lambda: fn(*args, **kw))
    except Exception as err:  # noqa: BLE001 - one line to the client, no record text in logs
        raise _tool_error(err) from None


def _retrieval_tool(mcp: FastMCP, ws: Workspace, spec: Any) -> None:
    """Register one typed retrieval tool: its argument model's fields become the tool's parameters."""
    params = []
    for name, field in spec.args_model.model_fields.items():
        ann = Annotated[field.annotation, Field(description=field.description)] if field.description else field.annotation
        default = inspect.Parameter.empty if field.is_required() else field.get_default(call_default_factory=True)
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=ann))
    for extra in ("patient", "source"):
        if extra not in spec.args_model.model_fields:
            params.append(inspect.Parameter(extra, inspect.Parameter.KEYWORD_ONLY, default=None,
                                            annotation=PatientArg if extra == "patient" else SourceArg))

    async def call(**kw: Any) -> dict[str, Any]:
        patient, source = kw.pop("patient", None), kw.pop("source", None)
        items = await _threaded(ws.call_tool, spec.name, kw, source, patient)
        return {"tool": spec.name, "items": items}

    call.__signature__ = inspect.Signature(params, return_annotation=dict[str, Any])  # type: ignore[attr-defined]
    call.__name__ = spec.name
    mcp.add_tool(call, name=spec.name, description=spec.description + "\n\nReturns evidence items: citation key, text, date.")


def create_server(ws: Workspace, *, host: str = "127.0.0.1", port: int = 8765) -> FastMCP:
    mcp = FastMCP("chartwise", instructions=INSTRUCTIONS, host=host, port=port, log_level="WARNING")

    @mcp.tool()
    async def list_patients(source: SourceArg = None) -> list[dict[str, Any]]:
        """The patients of a loaded source: id, gender, birth date, resource count, first and last dates."""
        return [p.model_dump(mode="json") for p in await _threaded(ws.patients, source)]

    @mcp.tool()
    async def load_source(path: Annotated[str, Field(description="absolute server-side path: bundle file, folder of bundles, or Bulk NDJSON folder")],
                          default: bool = True) -> dict[str, Any]:
        """Read a FHIR source on the server (read-only) and make it the default; returns its id and counts."""
        src = await _threaded(ws.load, path, default=default)
        return src.info()

    @mcp.tool()
    async def timeline(patient: PatientArg = None, source: SourceArg = None,
                       format: Literal["markdown", "json"] = "markdown") -> str:
        """The deterministic cited timeline of a patient: problems, medications, lab and vital trends,
        procedures, immunizations, notes, encounters. Every line carries its citation keys."""
        from chartwise.timeline_render import to_json, to_markdown

        t, _ = await _threaded(ws.timeline, source, patient)
        return to_json(t) if format == "json" else to_markdown(t)

    @mcp.tool()
    async def evidence(question: str, patient: PatientArg = None, source: SourceArg = None,
                       budget: Annotated[int, Field(gt=0, le=200_000, description="token budget")] = 4000) -> dict[str, Any]:
        """The evidence pack retrieval gives a question (no model): cited items within a token budget."""
        return await _threaded(ws.evidence, question, source, patient, budget)

    @mcp.tool()
    async def cite(key: Annotated[str, Field(description="Type/id, DocumentReference/id#start-end, or PMID:n")],
                   source: SourceArg = None) -> dict[str, Any]:
        """What a citation key points at: the resource's FHIR JSON, the note span with context, or the paper."""
        return await _threaded(ws.cite, key, source)

    async def agent(ctx: Context | None, task: str, question: str | None, patient: str | None, source: str | None,
                    thread: str | None = None, needs_patient: bool = True) -> dict[str, Any]:
        from chartwise.http_api import _progress_line

        def work() -> dict[str, Any]:
            result: dict[str, Any] = {}
            step = 0
            for event in ws.agent_events(task, question, source, patient, thread, needs_patient=needs_patient):
                if event.get("type") == "result":
                    result = event["result"]
                elif ctx is not None and (line := _progress_line(event)):
                    step += 1
                    try:
                        anyio.from_thread.run(ctx.report_progress, step, None, line)
                    except Exception:  # noqa: BLE001 - progress is best effort
                        pass
            keys = ("answer", "citations", "unsupported", "model", "llm_calls", "prompt_tokens", "task", "notices")
            return {k: result.get(k) for k in keys}

        return await _threaded(work)

    @mcp.tool()
    async def ask(question: str, patient: PatientArg = None, source: SourceArg = None,
                  thread: Annotated[str | None, Field(default=None, description="continue a conversation")] = None,
                  ctx: Context | None = None) -> dict[str, Any]:
        """A cited answer to a clinical question about one patient. Statements the record does not
        support are removed and listed under ``unsupported``."""
        return await agent(ctx, "ask", question, patient, source, thread)

    @mcp.tool()
    async def summarize(patient: PatientArg = None, source: SourceArg = None, ctx: Context | None = None) -> dict[str, Any]:
        """The cited narrative chart summary of one patient (period by period, then the whole chart)."""
        return await agent(ctx, "summarize", None, patient, source)

    @mcp.tool()
    async def literature(question: str, patient: PatientArg = None, source: SourceArg = None,
                         ctx: Context | None = None) -> dict[str, Any]:
        """A literature-grounded answer citing PMIDs (and chart keys when a patient is given)."""
        return await agent(ctx, "literature", question, patient, source, needs_patient=False)

    try:
        specs = ws.tool_specs() if ws.default else []
    except Exception:  # noqa: BLE001 - the record-level tools are optional; the rest still serve
        specs = []
    taken = {t.name for t in mcp._tool_manager.list_tools()}
    for spec in specs:
        if spec.name not in taken:
            _retrieval_tool(mcp, ws, spec)

    @mcp.resource("chartwise://patients", name="patients", mime_type="application/json",
                  description="the patients of the default source")
    def patients_resource() -> str:
        return json.dumps([p.model_dump(mode="json") for p in ws.patients()], indent=1)

    if ws.default:
        from mcp.server.fastmcp.resources import FunctionResource

        for p in ws.patients()[:1000]:
            def read(pid: str = p.id) -> str:
                summary = next(x for x in ws.patients() if x.id == pid)
                return json.dumps(summary.model_dump(mode="json"), indent=1)

            mcp.add_resource(FunctionResource(uri=f"chartwise://patient/{p.id}", name=f"patient {p.id}",
                                              description="patient summary: gender, birth date, resources, date range",
                                              mime_type="application/json", fn=read))

    @mcp.resource("chartwise://patient/{patient_id}/timeline", name="timeline", mime_type="text/markdown",
                  description="the cited timeline of a patient (Markdown)")
    def timeline_resource(patient_id: str) -> str:
        from chartwise.timeline_render import to_markdown

        return to_markdown(ws.timeline(None, patient_id)[0])

    return mcp


def bearer_guard(app: Any, token: str) -> Any:
    """ASGI middleware: HTTP requests need ``Authorization: Bearer <token>``."""
    import hmac

    expected = f"Bearer {token}".encode()

    async def guarded(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            got = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(got, expected):
                body = b'{"detail": "missing or wrong bearer token (CHARTWISE_API_TOKEN)"}'
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]})
                await send({"type": "http.response.body", "body": body})
                return
        await app(scope, receive, send)

    return guarded


def run(ws: Workspace, transport: str = "stdio", host: str = "127.0.0.1", port: int = 8765,
        token: str | None = None) -> None:
    """Serve over stdio, or streamable HTTP at ``http://HOST:PORT/mcp`` (bearer token when given)."""
    server = create_server(ws, host=host, port=port)
    if transport != "http":
        server.run("stdio")
        return
    import uvicorn

    app = server.streamable_http_app()
    if token:
        app = bearer_guard(app, token)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, server_header=False)
