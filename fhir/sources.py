"""Where FHIR resources come from: bundle files, directories, Bulk NDJSON, single resource files.

Every source yields :class:`RawResource` items (a JSON object plus where it was found) through one
interface, :class:`Source`.  A FHIR REST server is another implementation of the same interface.
Sources only read; they never validate (that is :mod:`chartwise.fhir.parse`'s job), but they do
reject input that is not FHIR at all (not JSON, empty, binary, not a resource) with a one-line
:class:`~chartwise.fhir.errors.InputError`.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import orjson

from .errors import InputError, SourceError

#: Bundle types whose entries are read as resources.
BUNDLE_TYPES = {
    "transaction", "collection", "searchset", "document", "batch", "message", "history",
    "transaction-response", "batch-response", "subscription-notification",
}
_JSON_SUFFIXES = (".json",)
_NDJSON_SUFFIXES = (".ndjson", ".jsonl", ".ndjson.gz")
#: Files in a Bulk export folder that are not resources (the export log, manifests).
_NON_RESOURCE_FILES = {"log.ndjson", "manifest.json", "output.json"}


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a resource was read: file, and line (NDJSON) or entry index (bundle)."""

    file: str
    line: int | None = None
    entry: int | None = None

    def __str__(self) -> str:
        if self.line is not None:
            return f"{self.file}:{self.line}"
        if self.entry is not None:
            return f"{self.file} entry {self.entry}"
        return self.file


@dataclass(slots=True)
class RawResource:
    """One resource as JSON, with its origin and (in a bundle) its ``fullUrl``."""

    data: dict
    origin: Origin
    full_url: str | None = None
    bundle_type: str | None = None


@runtime_checkable
class Source(Protocol):
    """Anything that yields raw FHIR resources.  Implementations: files here, REST later."""

    label: str

    def __iter__(self) -> Iterator[RawResource]: ...


@dataclass
class FileSource:
    """A file or a directory of FHIR JSON: bundles, single resources, or Bulk NDJSON."""

    path: Path
    label: str = ""
    files: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        if not self.path.exists():
            raise SourceError(f"{self.path}: no such file or directory")
        self.files = list_input_files(self.path)
        if not self.files:
            raise InputError(f"{self.path}: no .json or .ndjson files found")
        self.label = self.label or str(self.path)

    def total_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.files)

    def __iter__(self) -> Iterator[RawResource]:
        for file in self.files:
            yield from read_file(file)


def list_input_files(path: Path) -> list[Path]:
    """The FHIR input files at ``path``: the file itself, or the JSON/NDJSON files below a folder."""
    if path.is_file():
        return [path]
    found = []
    for root, dirs, names in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.startswith(".") or name in _NON_RESOURCE_FILES:
                continue
            if name.endswith(_JSON_SUFFIXES + _NDJSON_SUFFIXES):
                found.append(Path(root) / name)
    return found


def read_file(file: Path) -> Iterator[RawResource]:
    """Yield the resources of one file (NDJSON streamed line by line; JSON read whole)."""
    name = str(file)
    if file.name.endswith(_NDJSON_SUFFIXES):
        yield from _read_ndjson(file)
        return
    raw = file.read_bytes()
    _check_text(raw, name)
    stripped = raw.lstrip()
    # A .json file that is really NDJSON (several objects, one per line) is read as NDJSON.
    if stripped.startswith(b"{") and b"\n{" in stripped.rstrip() and _looks_ndjson(stripped):
        yield from _read_ndjson(file)
        return
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise InputError(f"{name}: not valid JSON ({_json_error(err)})") from err
    yield from resources_from_json(data, name)


def resources_from_json(data: object, name: str) -> Iterator[RawResource]:
    """Resources in one parsed JSON document: a Bundle's entries, or the resource itself."""
    if not isinstance(data, dict):
        raise InputError(f"{name}: not a FHIR resource (top level is a JSON {type(data).__name__}, expected an object)")
    rtype = data.get("resourceType")
    if not isinstance(rtype, str) or not rtype:
        raise InputError(f"{name}: not a FHIR resource (no resourceType)")
    if rtype != "Bundle":
        yield RawResource(data=data, origin=Origin(name))
        return
    btype = data.get("type")
    entries = data.get("entry") or []
    if not isinstance(entries, list):
        raise InputError(f"{name}: Bundle.entry is not a list")
    for index, entry in enumerate(entries):
        origin = Origin(name, entry=index)
        if not isinstance(entry, dict):
            yield RawResource(data={"_invalid_entry": entry}, origin=origin, bundle_type=btype)
            continue
        resource = entry.get("resource")
        if resource is None:
            # A transaction DELETE or a search "outcome" entry carries no resource: nothing to read.
            continue
        if isinstance(resource, dict) and resource.get("resourceType") == "Bundle":
            # Nested bundles (e.g. a document inside a collection) are flattened.
            for inner in resources_from_json(resource, f"{name} entry {index}"):
                yield inner
            continue
        yield RawResource(data=resource, origin=origin, full_url=entry.get("fullUrl"), bundle_type=btype)


def _read_ndjson(file: Path) -> Iterator[RawResource]:
    name = str(file)
    opener = open
    if file.name.endswith(".gz"):
        import gzip

        opener = gzip.open  # type: ignore[assignment]
    seen_any = False
    with opener(file, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            if number == 1:
                _check_text(line, name)
            try:
                data = orjson.loads(line)
            except orjson.JSONDecodeError as err:
                raise InputError(f"{name}:{number}: not valid JSON ({_json_error(err)})") from err
            seen_any = True
            if not isinstance(data, dict) or not isinstance(data.get("resourceType"), str):
                raise InputError(f"{name}:{number}: not a FHIR resource (no resourceType)")
            yield RawResource(data=data, origin=Origin(name, line=number))
    if not seen_any:
        raise InputError(f"{name}: empty file")


def _looks_ndjson(raw: bytes) -> bool:
    first = raw.split(b"\n", 1)[0].strip()
    try:
        orjson.loads(first)
    except orjson.JSONDecodeError:
        return False
    return True


def _check_text(raw: bytes, name: str) -> None:
    if not raw.strip():
        raise InputError(f"{name}: empty file")
    head = raw[:4096]
    if b"\x00" in head or head.startswith((b"\x89PNG", b"%PDF", b"PK\x03\x04", b"\x1f\x8b")) or head[128:132] == b"DICM":
        raise InputError(f"{name}: binary file, not FHIR JSON")


def _json_error(err: orjson.JSONDecodeError) -> str:
    msg = str(err).split(":", 1)[0]
    return f"{msg} at line {err.lineno}, column {err.colno}"


def open_source(path: str | os.PathLike[str]) -> Source:
    """The source for a path (file or directory).  URLs are served by the REST source."""
    text = os.fspath(path)
    if text.startswith(("http://", "https://")):
        from .rest import open_rest_source

        return open_rest_source(text)
    return FileSource(Path(text))
