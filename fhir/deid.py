"""De-identification before text leaves the machine, and re-identification of what comes back.

A :class:`Deidentifier` is built for one patient (``Deidentifier.for_record(record)``).  It knows the
identifying values of the Patient and of related persons (``RelatedPerson`` resources and
``Patient.contact``): names, identifiers, telecom, addresses and the birth date, and replaces them by
consistent pseudonyms:

* in structured data (:meth:`resource`, :meth:`fact`): the fields themselves, and every string;
* in free text (:meth:`text`): exact matches (case-insensitive, whitespace-flexible, phone numbers
  by their digits, birth dates in ISO, US and written forms) and fuzzy matches of name parts
  (Synthea's trailing digits dropped, possessives, one typo in names of five letters or more);
* dates optionally shifted by a per-patient offset (same for every date of the patient, so
  intervals and order are kept; ISO and US dates keep their length, so note offsets stay valid).

Citation keys (``Type/id``, ``DocumentReference/id#start-end``) are never altered, so the model's
citations still verify.  :meth:`reidentify` turns pseudonyms in an answer back into the real values
and shifts dates back, for display.

Policy: on by default for remote backends, opt-in for local ones (:meth:`DeidSettings.active`).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

_GIVEN = ["Alex", "Jordan", "Taylor", "Morgan", "Casey", "Riley", "Avery", "Quinn", "Rowan", "Skyler", "Emerson",
          "Finley", "Harper", "Kendall", "Logan", "Parker", "Reese", "Sawyer", "Teagan", "Dakota"]
_FAMILY = ["Ashdown", "Brightwater", "Calloway", "Dunmore", "Everly", "Fairbank", "Glenhaven", "Holloway",
           "Ingleby", "Kestrel", "Larkfield", "Merriweather", "Northcott", "Oakhurst", "Pembrook", "Quarrington",
           "Redfern", "Stonebridge", "Thornbury", "Westcombe"]
_CITIES = ["Elmstead", "Fernvale", "Granford", "Hollis Bay", "Ivybridge", "Juniper Falls", "Kingsmere", "Linden Cross"]
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]
_KEY_RE = re.compile(r"\b[A-Z][A-Za-z]{2,40}/[A-Za-z0-9\-.]{1,64}(?:#\d+-\d+)?")
_ISO_DATE_RE = re.compile(r"(?<![\d/])(\d{4})-(\d{2})-(\d{2})(?!\d)")
_US_DATE_RE = re.compile(r"(?<![\d/])(\d{2})/(\d{2})/(\d{4})(?![\d/])")
_FHIR_DATE_RE = re.compile(r"^(\d{4})(-(\d{2})(-(\d{2}))?)?(T.*)?$")
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z'\-]*[A-Za-z]|[A-Za-z]")
_PHONE_RE = re.compile(r"\+?\d[\d\s().\-]{5,}\d")


class DeidSettings(BaseModel):
    """``enabled``: None = automatic (on for remote backends, off for local), True/False to force."""

    enabled: bool | None = None
    shift_dates: bool = False
    max_shift_days: int = Field(365, ge=1)
    fuzzy: bool = True
    salt: str | None = Field(None, description="secret for pseudonyms and offsets; random per process when unset")

    def active(self, remote: bool) -> bool:
        return remote if self.enabled is None else self.enabled

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "DeidSettings":
        """``CHARTWISE_DEID`` (auto|on|off), ``CHARTWISE_DEID_SHIFT_DATES`` (1/0), ``CHARTWISE_DEID_SALT``."""
        env = dict(os.environ if env is None else env)
        mode = env.get("CHARTWISE_DEID", "auto").strip().lower()
        enabled = None if mode in ("", "auto") else mode in ("1", "on", "true", "yes")
        shift = env.get("CHARTWISE_DEID_SHIFT_DATES", "0").strip().lower() in ("1", "on", "true", "yes")
        return cls(enabled=enabled, shift_dates=shift, salt=env.get("CHARTWISE_DEID_SALT") or None)


_PROCESS_SALT = secrets.token_hex(16)


class Deidentifier:
    """Pseudonyms and date offset for one patient; see the module docstring."""

    def __init__(self, patient: dict, related: Iterable[dict] = (), settings: DeidSettings | None = None) -> None:
        self.settings = settings or DeidSettings()
        self._salt = (self.settings.salt or _PROCESS_SALT).encode()
        self.patient_id = str(patient.get("id") or "")
        self.forward: dict[str, str] = {}  # original (exact) -> pseudonym
        self._phrases: dict[str, str] = {}  # lowercased phrase -> pseudonym
        self._tokens: dict[str, str] = {}  # lowercased name part (digits dropped) -> pseudonym part
        self._digits: dict[str, str] = {}  # phone digits -> pseudonym
        self._used: set[str] = set()
        self._phrase_re: re.Pattern | None = None
        self.offset_days = 0
        if self.settings.shift_dates:
            span = self.settings.max_shift_days
            n = int.from_bytes(self._hash("date-shift", self.patient_id)[:4], "big") % (2 * span) - span
            self.offset_days = n if n != 0 else span
        self.birth_dates: list[str] = []
        people = [patient, *related]
        for contact in patient.get("contact") or ():
            if isinstance(contact, dict):
                people.append({"name": [contact["name"]] if isinstance(contact.get("name"), dict) else [],
                               "telecom": contact.get("telecom"), "address": [contact["address"]]
                               if isinstance(contact.get("address"), dict) else []})
        for ext in patient.get("extension") or ():
            if not isinstance(ext, dict):
                continue
            url = str(ext.get("url", ""))
            if url.endswith("mothersMaidenName") and isinstance(ext.get("valueString"), str):
                *given, family = ext["valueString"].split() or [""]
                people.append({"name": [{"given": given, "family": family}]})
            elif url.endswith("birthPlace") and isinstance(ext.get("valueAddress"), dict):
                people.append({"address": [ext["valueAddress"]]})
        for person in people:
            self._learn(person)

    @classmethod
    def for_record(cls, record: Any, settings: DeidSettings | None = None) -> "Deidentifier":
        """For a :class:`~chartwise.fhir.store.PatientRecord`: its Patient and the RelatedPersons of the read."""
        related = [r for r in record.resources() if isinstance(r, dict) and r.get("resourceType") == "RelatedPerson"]
        return cls(record.patient, related, settings)

    # ------------------------------------------------------------------ learning
    def _hash(self, *parts: str) -> bytes:
        return hmac.new(self._salt, "\x1f".join(parts).encode(), hashlib.sha256).digest()

    def _pick(self, kind: str, value: str, choices: list[str] | None, fmt: str = "{}") -> str:
        digest = self._hash(kind, value.lower())
        for bump in range(200):
            if choices:
                base = choices[(int.from_bytes(digest[:4], "big") + bump) % len(choices)]
                candidate = base if bump < len(choices) else f"{base}{bump // len(choices) + 1}"
            else:
                candidate = fmt.format(hashlib.sha256(digest + bytes([bump])).hexdigest()[:8].upper())
            if candidate not in self._used:
                self._used.add(candidate)
                return candidate
        raise RuntimeError("pseudonym space exhausted")  # pragma: no cover

    def _token(self, part: str, family: bool) -> str | None:
        clean = re.sub(r"\d+$", "", part.strip()).strip(".")
        if len(clean) < 2:
            return None
        low = clean.lower()
        if low not in self._tokens:
            self._tokens[low] = self._pick("family" if family else "given", low, _FAMILY if family else _GIVEN)
        return self._tokens[low]

    def _phrase(self, original: str, pseudonym: str) -> None:
        original = " ".join(original.split())
        if len(original) < 2:
            return
        self.forward.setdefault(original, pseudonym)
        self._phrases.setdefault(original.lower(), pseudonym)

    def _learn(self, person: dict) -> None:
        for name in person.get("name") or ():
            if not isinstance(name, dict):
                continue
            given = [g for g in name.get("given") or () if isinstance(g, str)]
            family = name.get("family") if isinstance(name.get("family"), str) else None
            g_ps = [self._token(g, False) for g in given]
            f_ps = self._token(family, True) if family else None
            full_ps = " ".join(p for p in [*g_ps, f_ps] if p)
            for g, p in zip(given, g_ps):
                if p:
                    self._phrase(g, p)
            if family and f_ps:
                self._phrase(family, f_ps)
            if given and family:
                self._phrase(" ".join([*given, family]), full_ps)
                self._phrase(" ".join([*(re.sub(r"\d+$", "", g) for g in given), re.sub(r"\d+$", "", family)]), full_ps)
                self._phrase(f"{family}, {' '.join(given)}", f"{f_ps}, {' '.join(p for p in g_ps if p)}")
            if isinstance(name.get("text"), str):
                self._phrase(name["text"], full_ps or self._pick("name", name["text"], _FAMILY))
        for ident in person.get("identifier") or ():
            value = ident.get("value") if isinstance(ident, dict) else None
            if isinstance(value, str) and len(value) >= 3:
                self._phrase(value, self._pick("id", value, None, "ID-{}"))
        for tel in person.get("telecom") or ():
            value = tel.get("value") if isinstance(tel, dict) else None
            if not isinstance(value, str):
                continue
            if tel.get("system") == "email" or "@" in value:
                self._phrase(value, self._pick("email", value, None, "user-{}@example.invalid").lower())
            else:
                digits = re.sub(r"\D", "", value)
                if len(digits) >= 7:
                    ps = self._pick("phone", digits, None, "555-{}")[:12]
                    self._digits[digits] = ps
                    self.forward.setdefault(value, ps)
        for addr in person.get("address") or ():
            if not isinstance(addr, dict):
                continue
            for line in addr.get("line") or ():
                if isinstance(line, str):
                    n = int.from_bytes(self._hash("line", line)[:2], "big") % 900 + 100
                    self._phrase(line, f"{n} {self._pick('street', line, _FAMILY)} Street")
            if isinstance(addr.get("city"), str):
                self._phrase(addr["city"], self._pick("city", addr["city"], _CITIES))
            if isinstance(addr.get("postalCode"), str):
                self._phrase(addr["postalCode"], self._pick("zip", addr["postalCode"], None, "Z{}")[:6])
            if isinstance(addr.get("text"), str):
                self._phrase(addr["text"], self._pick("addr", addr["text"], None, "ADDRESS-{}"))
        birth = person.get("birthDate")
        if isinstance(birth, str) and len(birth) == 10:
            self.birth_dates.append(birth)

    # ------------------------------------------------------------------ dates
    def shift_date(self, value: str, back: bool = False) -> str:
        """A FHIR date/dateTime shifted by the patient's offset (precision kept)."""
        if not self.offset_days:
            return value
        m = _FHIR_DATE_RE.match(value)
        if not m:
            return value
        days = -self.offset_days if back else self.offset_days
        year, month, day = int(m.group(1)), int(m.group(3) or 1), int(m.group(5) or 1)
        try:
            shifted = date(year, month, day) + timedelta(days=days)
        except ValueError:
            return value
        if m.group(5):
            return shifted.isoformat() + (m.group(6) or "")
        if m.group(3):
            return shifted.isoformat()[:7]
        return str(shifted.year)

    def _birth_pseudonym(self, iso: str) -> str:
        return self.shift_date(iso) if self.offset_days else f"{iso[:4]}-01-01"

    # ------------------------------------------------------------------ text
    def text(self, value: str) -> str:
        """Free text with identifying values replaced and (when on) dates shifted; keys untouched."""
        if not value:
            return value
        protected = [m.span() for m in _KEY_RE.finditer(value)]
        hits: list[tuple[int, int, str]] = []

        def add(start: int, end: int, repl: str) -> None:
            if any(start < pe and ps < end for ps, pe in protected):
                return
            hits.append((start, end, repl))

        if self._phrase_re is None and self._phrases:
            alternatives = [r"\s+".join(re.escape(p) for p in phrase.split())
                            for phrase in sorted(self._phrases, key=len, reverse=True)]
            self._phrase_re = re.compile(r"(?<![\w])(?:" + "|".join(alternatives) + r")(?![\w])", re.IGNORECASE)
        if self._phrase_re is not None:
            for m in self._phrase_re.finditer(value):
                repl = self._phrases.get(" ".join(m.group().split()).lower())
                if repl is not None:
                    add(m.start(), m.end(), repl)
        for m in _PHONE_RE.finditer(value):
            digits = re.sub(r"\D", "", m.group())
            for known, ps in self._digits.items():
                if digits == known or (len(known) >= 10 and digits.endswith(known[-10:])) or (len(digits) >= 10 and known.endswith(digits[-10:])):
                    add(m.start(), m.end(), ps)
        for iso in self.birth_dates:
            y, mo, d = iso.split("-")
            month = _MONTHS[int(mo) - 1]
            forms = [iso, f"{mo}/{d}/{y}", f"{int(mo)}/{int(d)}/{y}", f"{month} {int(d)}, {y}", f"{int(d)} {month} {y}",
                     f"{month[:3]} {int(d)}, {y}"]
            for form in forms:
                for m in re.finditer(r"(?<![\w/])" + re.escape(form) + r"(?![\w/])", value, flags=re.IGNORECASE):
                    add(m.start(), m.end(), self._birth_pseudonym(iso))
        if self.settings.fuzzy and self._tokens:
            for m in _WORD_RE.finditer(value):
                word = m.group()
                if not word[0].isupper():
                    continue  # "will", "may": only capitalised words can be names
                core = word[:-2] if word.lower().endswith("'s") else word
                hit = self._fuzzy_token(core)
                if hit:
                    add(m.start(), m.start() + len(core), hit)
            # Synthea-style names with digits ("Buster65")
            for m in re.finditer(r"\b([A-Z][A-Za-z'\-]+)\d+\b", value):
                hit = self._fuzzy_token(m.group(1))
                if hit:
                    add(m.start(), m.end(), hit)
        out = _apply(value, hits)
        if self.offset_days:
            out = self._shift_text_dates(out, back=False, protected=[m.span() for m in _KEY_RE.finditer(out)])
        return out

    def _fuzzy_token(self, word: str) -> str | None:
        low = word.lower()
        if low in self._tokens:
            return self._tokens[low]
        if len(low) >= 5:
            for known, ps in self._tokens.items():
                if len(known) >= 5 and abs(len(known) - len(low)) <= 1 and _within_one_edit(known, low):
                    return ps
        return None

    def _shift_text_dates(self, value: str, back: bool, protected: list[tuple[int, int]]) -> str:
        days = -self.offset_days if back else self.offset_days

        def ok(m: re.Match) -> bool:
            return not any(m.start() < pe and ps < m.end() for ps, pe in protected)

        def iso(m: re.Match) -> str:
            if not ok(m):
                return m.group()
            try:
                return (date(int(m.group(1)), int(m.group(2)), int(m.group(3))) + timedelta(days=days)).isoformat()
            except ValueError:
                return m.group()

        def us(m: re.Match) -> str:
            if not ok(m):
                return m.group()
            try:
                d = date(int(m.group(3)), int(m.group(1)), int(m.group(2))) + timedelta(days=days)
            except ValueError:
                return m.group()
            return f"{d.month:02d}/{d.day:02d}/{d.year:04d}"

        return _US_DATE_RE.sub(us, _ISO_DATE_RE.sub(iso, value))

    def reidentify(self, value: str) -> str:
        """An answer written over de-identified text, with real values and dates restored for display."""
        if not value:
            return value
        if self.offset_days:
            value = self._shift_text_dates(value, back=True, protected=[m.span() for m in _KEY_RE.finditer(value)])
        reverse: dict[str, str] = {}
        for original, ps in self.forward.items():
            reverse.setdefault(ps, original)
        for low, ps in self._tokens.items():
            reverse.setdefault(ps, next((o for o in self.forward if o.lower() == low or re.sub(r"\d+$", "", o).lower() == low), low.title()))
        protected = [m.span() for m in _KEY_RE.finditer(value)]
        hits = []
        for ps in sorted(reverse, key=len, reverse=True):
            for m in re.finditer(r"(?<![\w@.])" + re.escape(ps) + r"(?![\w@])", value):
                if not any(m.start() < pe and s < m.end() for s, pe in protected):
                    hits.append((m.start(), m.end(), reverse[ps]))
        return _apply(value, hits)

    # ------------------------------------------------------------------ structured
    def resource(self, data: dict) -> dict:
        """A de-identified deep copy of a resource (identity fields replaced, strings and dates cleaned)."""
        return self._walk(data, "")

    def _walk(self, node: Any, field: str) -> Any:
        if isinstance(node, dict):
            if node.get("resourceType") in ("Patient", "RelatedPerson") or field in ("contact",):
                node = dict(node)
                if isinstance(node.get("birthDate"), str) and len(node["birthDate"]) == 10:
                    node["birthDate"] = self._birth_pseudonym(node["birthDate"])
                node.pop("photo", None)
            out = {}
            for k, v in node.items():
                if k == "extension" and isinstance(v, list):
                    v = [e for e in v if not (isinstance(e, dict) and str(e.get("url", "")).endswith("/geolocation"))]
                if k == "attachment" and isinstance(v, dict):
                    out[k] = self._attachment(v)
                elif k in ("reference", "id", "resourceType", "system", "code", "url", "fullUrl", "div") and isinstance(v, str):
                    out[k] = self.text(v) if k == "div" else v
                else:
                    out[k] = self._walk(v, k)
            return out
        if isinstance(node, list):
            return [self._walk(v, field) for v in node]
        if isinstance(node, str):
            if field == "value" and node in self.forward:
                return self.forward[node]
            if self.offset_days and _FHIR_DATE_RE.match(node) and len(node) >= 4 and node[:4].isdigit():
                return self.shift_date(node)
            return self.text(node)
        return node

    def _attachment(self, att: dict) -> dict:
        out = {k: self._walk(v, k) for k, v in att.items() if k != "data"}
        data = att.get("data")
        if isinstance(data, str):
            ctype = str(att.get("contentType") or "")
            if ctype.startswith("text/") or not ctype:
                try:
                    raw = base64.b64decode(data, validate=False).decode("utf-8")
                except (binascii.Error, UnicodeDecodeError, ValueError):
                    return out  # undecodable binary content is dropped rather than sent
                out["data"] = base64.b64encode(self.text(raw).encode("utf-8")).decode("ascii")
        return out

    def fact(self, fact: Any) -> Any:
        """A de-identified copy of a :class:`~chartwise.fhir.facts.ClinicalFact`."""
        update: dict[str, Any] = {}
        for name in ("label", "text", "line"):
            value = getattr(fact, name, None)
            if isinstance(value, str):
                update[name] = self.text(value)
        if isinstance(getattr(fact, "value", None), str):
            update["value"] = self.text(fact.value)
        update["details"] = self._walk(dict(fact.details), "details")
        if self.offset_days:
            for name in ("effective", "end"):
                value = getattr(fact, name, None)
                if isinstance(value, str):
                    update[name] = self.shift_date(value)
            if isinstance(fact.when, datetime):
                update["when"] = fact.when + timedelta(days=self.offset_days)
        return fact.model_copy(update=update)

    def identifying_values(self) -> list[str]:
        """The identifying values this de-identifier removes (for leak scans in tests and audits)."""
        return sorted(set(self.forward) | set(self.birth_dates))


def phi_values(patient: dict, related: Iterable[dict] = ()) -> list[str]:
    """A patient's identifying values as strings: names (with and without Synthea digits), birth date,
    identifiers, telecom, address lines, city and postal code (what log scans look for)."""
    out: set[str] = set()
    for person in [patient, *related]:
        for name in person.get("name") or ():
            if not isinstance(name, dict):
                continue
            parts = [p for p in [*(name.get("given") or ()), name.get("family")] if isinstance(p, str)]
            for part in parts:
                out.add(part)
                out.add(re.sub(r"\d+$", "", part))
            if isinstance(name.get("text"), str):
                out.add(name["text"])
        for ident in person.get("identifier") or ():
            if isinstance(ident, dict) and isinstance(ident.get("value"), str):
                out.add(ident["value"])
        for tel in person.get("telecom") or ():
            if isinstance(tel, dict) and isinstance(tel.get("value"), str):
                out.add(tel["value"])
        for addr in person.get("address") or ():
            if isinstance(addr, dict):
                out.update(x for x in addr.get("line") or () if isinstance(x, str))
                out.update(addr[k] for k in ("city", "postalCode", "text") if isinstance(addr.get(k), str))
        if isinstance(person.get("birthDate"), str):
            out.add(person["birthDate"])
    return sorted(v for v in out if len(v) >= 3)


def _apply(value: str, hits: list[tuple[int, int, str]]) -> str:
    if not hits:
        return value
    hits.sort(key=lambda h: (h[0], -(h[1] - h[0])))
    out, pos = [], 0
    for start, end, repl in hits:
        if start < pos:
            continue
        out.append(value[pos:start])
        out.append(repl)
        pos = end
    out.append(value[pos:])
    return "".join(out)


def _within_one_edit(a: str, b: str) -> bool:
    if a == b:
        return True
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b)) <= 1 or any(
            a[:i] + a[i + 1] + a[i] + a[i + 2:] == b for i in range(len(a) - 1))
    if len(a) > len(b):
        a, b = b, a
    for i in range(len(b)):
        if b[:i] + b[i + 1:] == a:
            return True
    return False
