"""Reference resolution: ``urn:uuid:`` fullUrls, relative ``Type/id``, absolute URLs, conditional
``Type?identifier=system|value`` references, and contained ``#id`` resources.

Resolution never raises: a reference that finds nothing is *dangling* and is reported.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs

from pydantic import BaseModel


class Dangling(BaseModel):
    """A reference that points at nothing in the input."""

    source: str  # citation key of the resource that holds the reference
    path: str  # e.g. "encounter" or "result[2]"
    reference: str


@dataclass(slots=True)
class Resolved:
    """What a reference points at: the citation key of the (containing) resource and its JSON."""

    key: str
    data: dict
    contained: bool = False


def resource_key(data: dict) -> str | None:
    """The citation key ``Type/id`` of a resource, or None when it has no id."""
    rid = data.get("id")
    rtype = data.get("resourceType")
    if isinstance(rid, str) and rid and isinstance(rtype, str):
        return f"{rtype}/{rid}"
    return None


class ReferenceIndex:
    """Lookup tables over every accepted resource of one read."""

    def __init__(self) -> None:
        self.by_key: dict[str, dict] = {}
        self.by_full_url: dict[str, str] = {}
        self.by_identifier: dict[tuple[str, str, str], str] = {}

    def add(self, key: str, data: dict, full_url: str | None) -> None:
        self.by_key[key] = data
        if full_url:
            self.by_full_url[full_url] = key
        for ident in data.get("identifier") or ():
            if isinstance(ident, dict) and isinstance(ident.get("value"), str):
                system = ident.get("system") if isinstance(ident.get("system"), str) else ""
                self.by_identifier.setdefault((data["resourceType"], system, ident["value"]), key)

    def resolve(self, ref: object, container: dict | None = None, container_key: str | None = None) -> Resolved | None:
        """Resolve a Reference (dict or string) seen inside ``container``."""
        if isinstance(ref, dict):
            ref = ref.get("reference")
        if not isinstance(ref, str) or not ref:
            return None
        if ref.startswith("#"):
            if container is None:
                return None
            wanted = ref[1:]
            for item in container.get("contained") or ():
                if isinstance(item, dict) and item.get("id") == wanted:
                    return Resolved(key=container_key or resource_key(container) or "", data=item, contained=True)
            return None
        key = self.by_full_url.get(ref)
        if key is None:
            key = self._key_for(ref)
        if key is None:
            return None
        data = self.by_key.get(key)
        return Resolved(key=key, data=data) if data is not None else None

    def resolve_key(self, ref: object, container: dict | None = None) -> str | None:
        hit = self.resolve(ref, container)
        return hit.key if hit and not hit.contained else None

    def _key_for(self, ref: str) -> str | None:
        if "?" in ref:
            rtype, _, query = ref.partition("?")
            rtype = rtype.rsplit("/", 1)[-1]
            for value in parse_qs(query).get("identifier", []):
                system, sep, ident = value.rpartition("|")
                found = self.by_identifier.get((rtype, system if sep else "", ident))
                if found is None and not sep:
                    found = next((k for (t, _s, v), k in self.by_identifier.items() if t == rtype and v == ident), None)
                if found:
                    return found
            return None
        parts = ref.split("/_history/")[0].rstrip("/").split("/")
        if len(parts) >= 2:
            key = f"{parts[-2]}/{parts[-1]}"
            if key in self.by_key:
                return key
        return None


def iter_references(data: object, path: str = "") -> Iterator[tuple[str, str]]:
    """Every ``(path, reference)`` in a resource's JSON (contained resources excluded)."""
    if isinstance(data, dict):
        ref = data.get("reference")
        if isinstance(ref, str):
            yield path, ref
        for name, value in data.items():
            if name in ("contained", "reference", "text") or not isinstance(value, (dict, list)):
                continue
            yield from iter_references(value, f"{path}.{name}" if path else name)
    elif isinstance(data, list):
        for index, item in enumerate(data):
            if isinstance(item, (dict, list)):
                yield from iter_references(item, f"{path}[{index}]")
