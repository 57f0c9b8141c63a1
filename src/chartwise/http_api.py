"""The HTTP API (FastAPI) and the web chart viewer: ``chartwise serve``.

Endpoints (all under ``/api``; OpenAPI at ``/openapi.json``, interactive docs at ``/docs``):

    GET  /api/health                              status, version, backend, loaded sources
    GET  /api/sources                             loaded sources
    POST /api/sources         {"path": ...}       load a server-side bundle file / folder / NDJSON dir (read-only)
    GET  /api/sources/{id}/manifest               what the read holds (``inspect --json``)
    GET  /api/patients?source=ID                  patients of a source
    GET  /api/patients/{pid}/timeline             the cited timeline (JSON)
    GET  /api/patients/{pid}/timeline.html        the same as a self-contained HTML page
    GET  /api/cite?key=KEY&source=ID              a cited resource, note span (with context) or paper
    GET  /api/tools                               the typed retrieval tools and their JSON schemas
    POST /api/tools/{name}                        call one retrieval tool
    POST /api/evidence                            the evidence pack for a question (no model)
    POST /api/ask | /api/summarize | /api/literature           the agent's cited result (JSON)
    POST /api/ask/stream | /api/summarize/stream | /api/literature/stream
                                                  server-sent events: ``progress`` events, then ``result``
                                                  (or ``error``)

With ``CHARTWISE_API_TOKEN`` set, every ``/api`` route but ``/api/health`` needs
``Authorization: Bearer <token>``. The access log is off: URLs carry patient ids.
"""
from __future__ import annotations

import hmac
import json
import os
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from chartwise import __version__
from chartwise.fhir.errors import ChartwiseError, ConfigError
from chartwise.fhir.store import Manifest, PatientSummary
from chartwise.fhir.timeline import Timeline
from chartwise.service import Busy, Forbidden, NotFound, Workspace, one_line

NOTICE = "Chartwise is not a medical device: every answer needs clinician review."
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


# -- models ---------------------------------------------------------------------------------------
class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str
    backend: str = Field(description="the model backend answers come from ('none': the evidence pack alone)")
    sources: int
    auth: bool = Field(description="whether /api routes need a bearer token")
    notice: str = NOTICE


class SourceRequest(BaseModel):
    path: str = Field(description="absolute server-side path of a bundle file, a folder of bundles, or a Bulk NDJSON folder")
    strict: bool = Field(default=False, description="fail on the first invalid resource instead of quarantining it")
    default: bool = Field(default=True, description="make it the source used when a request names none")


class SourceInfo(BaseModel):
    id: str
    path: str
    patients: int
    read: int
    accepted: int
    quarantined: int
    seconds: float
    default: bool = False


class CitationView(BaseModel):
    key: str
    kind: Literal["resource", "span", "paper"]
    resource: dict[str, Any] | None = None
    span: dict[str, Any] | None = Field(default=None, description="start, end, text, and the text before and after")
    paper: dict[str, Any] | None = Field(default=None, description="pmid, title, text, year")


class EvidenceRequest(BaseModel):
    question: str = Field(min_length=1, max_length=4000)
    patient: str | None = None
    source: str | None = None
    budget: int = Field(default=4000, gt=0, le=200_000, description="token budget of the pack")
    id: str | None = None


class EvidenceItemOut(BaseModel):
    citation: str
    text: str
    tokens: int
    date: str | None = None


class EvidencePack(BaseModel):
    id: str | None = None
    question: str
    items: list[EvidenceItemOut]
    tokens: int


class ToolInfo(BaseModel):
    name: str
    description: str
    parameters: dict[str, Any]


class ToolCallRequest(BaseModel):
    arguments: dict[str, Any] = Field(default_factory=dict)
    patient: str | None = None
    source: str | None = None


class ToolResult(BaseModel):
    tool: str
    items: list[dict[str, Any]]


class AskRequest(BaseModel):
    question: str = Field(min_length=1, max_length=4000)
    patient: str | None = Field(default=None, description="patient id (default: the only patient of the source)")
    source: str | None = Field(default=None, description="source id (default: the default source)")
    thread: str | None = Field(default=None, max_length=200, description="continue a multi-turn conversation")


class SummarizeRequest(BaseModel):
    patient: str | None = None
    source: str | None = None


class LiteratureRequest(BaseModel):
    question: str = Field(min_length=1, max_length=4000)
    patient: str | None = Field(default=None, description="combine the papers with this patient's chart")
    source: str | None = None


class CitationOut(BaseModel):
    key: str
    verified: bool
    text: str


class UnsupportedOut(BaseModel):
    statement: str
    reason: str
    citations: list[str] = Field(default_factory=list)


class AgentResult(BaseModel):
    """The ``ask --json`` shape plus task, notices, usage, sections and evidence."""

    answer: str
    citations: list[CitationOut] = Field(default_factory=list)
    unsupported: list[UnsupportedOut] = Field(default_factory=list)
    model: str = "none"
    llm_calls: int = 0
    prompt_tokens: int = 0
    task: str | None = None
    notices: list[Any] = Field(default_factory=list)
    usage: dict[str, Any] = Field(default_factory=dict)
    sections: list[Any] = Field(default_factory=list)
    evidence: list[dict[str, Any]] = Field(default_factory=list)
    notice: str = NOTICE


class ErrorOut(BaseModel):
    detail: str


ERRORS = {400: {"model": ErrorOut}, 401: {"model": ErrorOut}, 404: {"model": ErrorOut}}


# -- app ------------------------------------------------------------------------------------------
def webui_dir() -> Path:
    return Path(str(resources.files("chartwise").joinpath("data", "webui")))


def _status(err: ChartwiseError) -> int:
    if isinstance(err, NotFound):
        return 404
    if isinstance(err, Forbidden):
        return 403
    if isinstance(err, Busy):
        return 429
    if isinstance(err, ConfigError):
        return 503
    return 400


def _progress_line(event: dict[str, Any]) -> str | None:
    from chartwise.commands.ask import progress

    if event.get("type") == "node":
        return f"step: {event.get('node')}"
    return progress(event)


def sse(event: str, data: Any) -> str:
    body = json.dumps(data, ensure_ascii=False, default=str)
    return f"event: {event}\ndata: {body}\n\n"


def create_app(workspace: Workspace | None = None, *, token: str | None = None,
               allowed_hosts: list[str] | None = None) -> FastAPI:
    """The FastAPI app. ``token`` defaults to ``CHARTWISE_API_TOKEN``; ``allowed_hosts`` (the Host
    headers accepted; None: any) guards a loopback server against DNS rebinding."""
    ws = workspace or Workspace()
    token = (token if token is not None else os.environ.get("CHARTWISE_API_TOKEN")) or None  # "": no token
    bearer = HTTPBearer(auto_error=False, description="CHARTWISE_API_TOKEN, when the server sets one")

    def require_token(creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if token is None:
            return
        if creds is None or not hmac.compare_digest(creds.credentials.encode(), token.encode()):
            raise _Unauthorized()

    app = FastAPI(title="Chartwise", version=__version__,
                  description="Cited timelines, chart QA and literature answers over FHIR R4 records. " + NOTICE)
    app.state.workspace = ws
    if allowed_hosts:
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)

    @app.middleware("http")
    async def headers(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        path = request.url.path
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        if path == "/" or path.startswith("/static/"):
            response.headers.setdefault("Content-Security-Policy", CSP)
        if path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.exception_handler(ChartwiseError)
    async def chartwise_error(request: Request, err: ChartwiseError) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=_status(err))

    @app.exception_handler(_Unauthorized)
    async def unauthorized(request: Request, err: Exception) -> JSONResponse:
        return JSONResponse({"detail": "missing or wrong bearer token (CHARTWISE_API_TOKEN)"}, status_code=401,
                            headers={"WWW-Authenticate": "Bearer"})

    @app.get("/api/health", response_model=Health, tags=["meta"])
    def health() -> Health:
        return Health(version=__version__, backend=ws.backend_name, sources=len(ws.sources), auth=token is not None)

    api = APIRouter(prefix="/api", dependencies=[Depends(require_token)], responses=ERRORS)

    def info(src: Any) -> SourceInfo:
        return SourceInfo(**src.info(), default=src.id == ws.default)

    @api.get("/sources", response_model=list[SourceInfo], tags=["sources"])
    def list_sources() -> list[SourceInfo]:
        return [info(s) for s in ws.sources.values()]

    @api.post("/sources", response_model=SourceInfo, tags=["sources"], responses={403: {"model": ErrorOut}})
    def load_source(req: SourceRequest) -> SourceInfo:
        """Read a server-side path (never written to). URLs are refused; with ``CHARTWISE_ALLOWED_ROOTS``
        set, only paths under those folders load."""
        return info(ws.load(req.path, strict=req.strict, default=req.default))

    @api.get("/sources/{source_id}/manifest", response_model=Manifest, tags=["sources"])
    def manifest(source_id: str) -> Manifest:
        return ws.source(source_id).records.manifest()

    @api.get("/patients", response_model=list[PatientSummary], tags=["patients"])
    def patients(source: str | None = None) -> list[PatientSummary]:
        return ws.patients(source)

    @api.get("/patients/{patient_id}/timeline", response_model=Timeline, tags=["patients"])
    def timeline(patient_id: str, source: str | None = None) -> Timeline:
        return ws.timeline(source, patient_id)[0]

    @api.get("/patients/{patient_id}/timeline.html", response_class=HTMLResponse, tags=["patients"])
    def timeline_html(patient_id: str, source: str | None = None) -> HTMLResponse:
        from chartwise.timeline_render import to_html

        t, record = ws.timeline(source, patient_id)
        return HTMLResponse(to_html(t, record))

    @api.get("/cite", response_model=CitationView, tags=["patients"])
    def cite(key: str = Query(description="Type/id, DocumentReference/id#start-end, or PMID:n"),
             source: str | None = None) -> CitationView:
        return CitationView(**ws.cite(key, source))

    @api.get("/tools", response_model=list[ToolInfo], tags=["retrieval"])
    def tools(source: str | None = None) -> list[ToolInfo]:
        return [ToolInfo(name=s.name, description=s.description, parameters=s.args_model.model_json_schema())
                for s in ws.tool_specs(source)]

    @api.post("/tools/{name}", response_model=ToolResult, tags=["retrieval"])
    def call_tool(name: str, req: ToolCallRequest) -> ToolResult:
        from pydantic import ValidationError

        try:
            items = ws.call_tool(name, req.arguments, req.source, req.patient)
        except ValidationError as err:
            first = err.errors()[0]
            raise _BadRequest(f"{name}: {'.'.join(str(x) for x in first['loc'])}: {first['msg']}") from None
        return ToolResult(tool=name, items=items)

    @api.post("/evidence", response_model=EvidencePack, tags=["retrieval"])
    def evidence(req: EvidenceRequest) -> EvidencePack:
        return EvidencePack(**ws.evidence(req.question, req.source, req.patient, req.budget, req.id))

    # -- agent ------------------------------------------------------------------------------------
    def run(task: str, question: str | None, source: str | None, patient: str | None, thread: str | None,
            needs_patient: bool) -> AgentResult:
        return AgentResult(**ws.run_agent(task, question, source, patient, thread, needs_patient=needs_patient))

    def stream(task: str, question: str | None, source: str | None, patient: str | None, thread: str | None,
               needs_patient: bool) -> StreamingResponse:
        if needs_patient or patient is not None:
            ws.patient(source, patient)  # a wrong id is a 404 before the stream starts
        elif source is not None:
            ws.source(source)

        def gen() -> Iterator[str]:
            try:
                for event in ws.agent_events(task, question, source, patient, thread, needs_patient=needs_patient):
                    if event.get("type") == "result":
                        yield sse("result", AgentResult(**event["result"]).model_dump(mode="json"))
                    else:
                        data = {k: v for k, v in event.items() if isinstance(v, (str, int, float, bool, list)) or v is None}
                        line = _progress_line(event)
                        if line:
                            data["line"] = line.strip()
                        yield sse("progress", data)
            except Exception as err:  # noqa: BLE001 - reported in the stream, one line, no record text
                yield sse("error", {"detail": one_line(err)})

        return StreamingResponse(gen(), media_type="text/event-stream", headers=STREAM_HEADERS)

    stream_doc = {200: {"content": {"text/event-stream": {}},
                        "description": "`event: progress` (graph steps: names and counts), then `event: result` "
                                       "(an AgentResult) or `event: error`"}}

    @api.post("/ask", response_model=AgentResult, tags=["agent"])
    def ask(req: AskRequest) -> AgentResult:
        """A cited answer to a clinical question about one patient."""
        return run("ask", req.question, req.source, req.patient, req.thread, True)

    @api.post("/ask/stream", tags=["agent"], response_class=StreamingResponse, responses=stream_doc)
    def ask_stream(req: AskRequest) -> StreamingResponse:
        return stream("ask", req.question, req.source, req.patient, req.thread, True)

    @api.post("/summarize", response_model=AgentResult, tags=["agent"])
    def summarize(req: SummarizeRequest) -> AgentResult:
        """The cited narrative chart summary."""
        return run("summarize", None, req.source, req.patient, None, True)

    @api.post("/summarize/stream", tags=["agent"], response_class=StreamingResponse, responses=stream_doc)
    def summarize_stream(req: SummarizeRequest) -> StreamingResponse:
        return stream("summarize", None, req.source, req.patient, None, True)

    @api.post("/literature", response_model=AgentResult, tags=["agent"])
    def literature(req: LiteratureRequest) -> AgentResult:
        """A literature-grounded answer citing PMIDs (and chart keys when a patient is given)."""
        return run("literature", req.question, req.source, req.patient, None, False)

    @api.post("/literature/stream", tags=["agent"], response_class=StreamingResponse, responses=stream_doc)
    def literature_stream(req: LiteratureRequest) -> StreamingResponse:
        return stream("literature", req.question, req.source, req.patient, None, False)

    app.include_router(api)

    @app.exception_handler(_BadRequest)
    async def bad_request(request: Request, err: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=400)

    # -- the viewer -------------------------------------------------------------------------------
    static = webui_dir()
    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(static / "index.html", media_type="text/html")

    return app


class _Unauthorized(Exception):
    pass


class _BadRequest(Exception):
    pass


def serve(app: FastAPI, host: str = "127.0.0.1", port: int = 8000, log_level: str = "warning") -> None:
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False, server_header=False)
