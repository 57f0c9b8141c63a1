"""Normalized clinical facts: one typed :class:`ClinicalFact` per clinical resource (or note).

Facts are built from the validated JSON (not from the pydantic FHIR models, which are only used to
validate), so this step stays cheap next to validation.  Every fact carries its citation key.
"""
from __future__ import annotations

import base64
import binascii
import html
import re
from datetime import date, datetime, timezone
from enum import StrEnum
from html.parser import HTMLParser
from typing import Any

from pydantic import BaseModel, Field

from .dates import parse_fhir_datetime
from .reference_ranges import default_range
from .references import ReferenceIndex


class Category(StrEnum):
    condition = "condition"
    lab = "lab"
    vital = "vital"
    medication = "medication"
    procedure = "procedure"
    immunization = "immunization"
    allergy = "allergy"
    encounter = "encounter"
    imaging = "imaging"
    note = "note"
    report = "report"
    other = "other"


class Coding(BaseModel):
    system: str | None = None
    code: str | None = None
    display: str | None = None


class RefRange(BaseModel):
    low: float | None = None
    high: float | None = None
    unit: str | None = None
    text: str | None = None
    source: str = "resource"  # "resource" or "default" (Chartwise's adult reference table)


class Component(BaseModel):
    label: str
    codes: list[Coding] = Field(default_factory=list)
    value: float | str | bool | None = None
    unit: str | None = None
    abnormal: bool | None = None


class ClinicalFact(BaseModel):
    """One clinical statement from the record, with the key it is cited by."""

    key: str
    resource_type: str
    category: Category
    patient: str | None = None
    label: str
    codes: list[Coding] = Field(default_factory=list)
    value: float | str | bool | None = None
    unit: str | None = None
    components: list[Component] = Field(default_factory=list)
    reference_range: RefRange | None = None
    interpretation: list[str] = Field(default_factory=list)
    abnormal: bool | None = None
    effective: str | None = None  # as written in the resource (start or instant)
    end: str | None = None  # period end / abatement / stop, as written
    when: datetime | None = None  # UTC-naive sort key for ``effective``
    status: str | None = None
    encounter: str | None = None
    related: list[str] = Field(default_factory=list)  # result / hasMember / reason keys
    details: dict[str, Any] = Field(default_factory=dict)
    text: str | None = None  # decoded note text (span citations are offsets into it)
    line: str = ""

    @property
    def day(self) -> str | None:
        """The effective date as ``YYYY-MM-DD`` (the local date written in the resource)."""
        return self.effective[:10] if self.effective else None

    @property
    def end_day(self) -> str | None:
        return self.end[:10] if self.end else None

    def code_keys(self) -> list[str]:
        return [f"{c.system or ''}|{c.code}" for c in self.codes if c.code]


# ---------------------------------------------------------------------------- small readers
def concept_codings(concept: object) -> list[Coding]:
    if not isinstance(concept, dict):
        return []
    out = []
    for c in concept.get("coding") or ():
        if isinstance(c, dict):
            out.append(Coding(system=c.get("system"), code=c.get("code"), display=c.get("display")))
    return out


def concept_text(concept: object) -> str | None:
    if isinstance(concept, list):
        for item in concept:
            text = concept_text(item)
            if text:
                return text
        return None
    if not isinstance(concept, dict):
        return None
    if isinstance(concept.get("text"), str) and concept["text"].strip():
        return concept["text"].strip()
    for c in concept.get("coding") or ():
        if isinstance(c, dict):
            if c.get("display"):
                return str(c["display"]).strip()
    for c in concept.get("coding") or ():
        if isinstance(c, dict) and c.get("code"):
            return str(c["code"])
    return None


def first_code(concept: object) -> str | None:
    if isinstance(concept, list):
        concept = concept[0] if concept else None
    if isinstance(concept, dict):
        for c in concept.get("coding") or ():
            if isinstance(c, dict) and c.get("code"):
                return str(c["code"])
    return None


def format_number(value: float) -> str:
    """A measured value for display: no float noise, enough digits to be read clinically."""
    if value != value:  # NaN
        return "NaN"
    if float(value).is_integer():
        return str(int(value))
    magnitude = abs(value)
    if magnitude >= 100:
        text = f"{value:.1f}"
    elif magnitude >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3g}"
    if "." in text and "e" not in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _value(data: dict) -> tuple[float | str | bool | None, str | None, str | None]:
    """(value, unit, comparator) of a ``value[x]``."""
    q = data.get("valueQuantity")
    if isinstance(q, dict):
        raw = q.get("value")
        v = float(raw) if isinstance(raw, (int, float)) else None
        return v, q.get("unit") or q.get("code"), q.get("comparator")
    if "valueCodeableConcept" in data:
        return concept_text(data["valueCodeableConcept"]), None, None
    for name in ("valueString", "valueDateTime", "valueTime", "valueBoolean", "valueInteger"):
        if name in data:
            v = data[name]
            return (float(v) if name == "valueInteger" else v), None, None
    r = data.get("valueRange")
    if isinstance(r, dict):
        low = (r.get("low") or {}).get("value")
        high = (r.get("high") or {}).get("value")
        return f"{low}-{high}", (r.get("low") or {}).get("unit"), None
    ratio = data.get("valueRatio")
    if isinstance(ratio, dict):
        n = (ratio.get("numerator") or {}).get("value")
        d = (ratio.get("denominator") or {}).get("value")
        return f"{n}/{d}", None, None
    period = data.get("valuePeriod")
    if isinstance(period, dict):
        return f"{period.get('start', '')}..{period.get('end', '')}", None, None
    return None, None, None


def _render_value(value: object, unit: str | None, comparator: str | None = None) -> str:
    if value is None:
        return ""
    text = format_number(value) if isinstance(value, float) else str(value)
    if comparator:
        text = comparator + text
    return f"{text} {unit}" if unit else text


_ABNORMAL = {"H", "HH", "HU", "L", "LL", "LU", "A", "AA", "<", ">", "POS", "DET", "R", "W", "U", "D", "B"}
_NORMAL = {"N", "NEG", "ND", "S"}


def _interpretation(data: dict) -> tuple[list[str], bool | None]:
    codes = []
    for concept in data.get("interpretation") or ():
        code = first_code(concept)
        if code:
            codes.append(code)
    if any(c.upper() in _ABNORMAL for c in codes):
        return codes, True
    if any(c.upper() in _NORMAL for c in codes):
        return codes, False
    return codes, None


def _range(data: dict, codes: list[Coding], unit: str | None) -> RefRange | None:
    for rr in data.get("referenceRange") or ():
        if not isinstance(rr, dict):
            continue
        low = (rr.get("low") or {}).get("value")
        high = (rr.get("high") or {}).get("value")
        unit_r = (rr.get("low") or {}).get("unit") or (rr.get("high") or {}).get("unit")
        if low is not None or high is not None or rr.get("text"):
            return RefRange(low=low, high=high, unit=unit_r, text=rr.get("text"))
    for c in codes:
        found = default_range(c.system, c.code, unit)
        if found:
            low, high, unit_d = found
            return RefRange(low=low, high=high, unit=unit_d, source="default")
    return None


def _out_of_range(value: object, rr: RefRange | None) -> bool | None:
    if rr is None or not isinstance(value, float):
        return None
    if rr.low is not None and value < rr.low:
        return True
    if rr.high is not None and value > rr.high:
        return True
    if rr.low is None and rr.high is None:
        return None
    return False


def _when(data: dict, *names: str) -> tuple[str | None, str | None]:
    """(start-or-instant, end) as written, from the first present of ``names`` (``x`` means ``x[x]``)."""
    for name in names:
        for suffix, kind in (("DateTime", "dt"), ("Period", "period"), ("Instant", "dt"), ("Date", "dt"),
                             ("", "dt"), ("String", "str"), ("Age", "age")):
            value = data.get(name + suffix)
            if value is None:
                continue
            if kind == "dt" and isinstance(value, str):
                return value, None
            if kind in ("period", "dt") and isinstance(value, dict) and ("start" in value or "end" in value):
                start, end = value.get("start"), value.get("end")
                if start or end:
                    return start or end, end
            if kind == "str" and isinstance(value, str):
                return None, None
            if kind == "age" and isinstance(value, dict):
                return None, None
    return None, None


def _status(data: dict, *fields: str) -> str | None:
    for name in fields:
        value = data.get(name)
        if isinstance(value, str):
            return value
        code = first_code(value)
        if code:
            return code
    return None


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in ("br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    parser = _TextExtractor()
    parser.feed(markup)
    text = html.unescape("".join(parser.parts))
    return re.sub(r"\n{3,}", "\n\n", re.sub(r"[ \t]+", " ", text)).strip()


def decode_attachment(attachment: object) -> str | None:
    """The text of a text/plain or text/html attachment with inline base64 data, else None."""
    if not isinstance(attachment, dict):
        return None
    ctype = str(attachment.get("contentType") or "text/plain").lower()
    if not ctype.startswith(("text/plain", "text/html", "text/markdown", "application/xhtml")):
        return None
    data = attachment.get("data")
    if not isinstance(data, str):
        return None
    try:
        raw = base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError):
        return None
    charset = "utf-8"
    match = re.search(r"charset=([\w-]+)", ctype)
    if match:
        charset = match.group(1)
    try:
        text = raw.decode(charset, errors="replace")
    except LookupError:
        text = raw.decode("utf-8", errors="replace")
    if "html" in ctype:
        text = html_to_text(text)
    return text


# ---------------------------------------------------------------------------- builders
_OBS_CATEGORY = {
    "vital-signs": Category.vital, "vital-sign": Category.vital, "laboratory": Category.lab,
    "imaging": Category.imaging,
}
NOT_FACTS = {
    "Patient", "Practitioner", "PractitionerRole", "Organization", "Location", "Medication", "Claim",
    "ExplanationOfBenefit", "Coverage", "Provenance", "Bundle", "Binary", "Group", "Endpoint",
    "HealthcareService", "RelatedPerson", "Person", "Substance", "Device", "CareTeam",
}


def _obs_category(data: dict) -> Category:
    for concept in data.get("category") or ():
        for c in (concept or {}).get("coding") or ():
            cat = _OBS_CATEGORY.get(str(c.get("code", "")).lower())
            if cat:
                return cat
    return Category.other


def build_fact(key: str, data: dict, refs: ReferenceIndex, patient: str | None) -> ClinicalFact | None:
    """The fact for one resource, or None for resources that are not clinical facts."""
    rtype = data.get("resourceType")
    if rtype in NOT_FACTS:
        return None
    builder = _BUILDERS.get(rtype, _generic)
    fact = builder(key, data, refs)
    if fact is None:
        return None
    fact.patient = patient
    if fact.encounter is None:
        enc = data.get("encounter") or (data.get("context") if isinstance(data.get("context"), dict) and "reference" in data.get("context", {}) else None)
        if enc is None and isinstance(data.get("context"), dict):
            encs = data["context"].get("encounter") or []
            enc = encs[0] if isinstance(encs, list) and encs else None
        fact.encounter = refs.resolve_key(enc, data) if enc else None
    fact.when = parse_fhir_datetime(fact.effective) if fact.effective else None
    fact.line = render_line(fact)
    return fact


def _observation(key: str, data: dict, refs: ReferenceIndex) -> ClinicalFact:
    codes = concept_codings(data.get("code"))
    value, unit, comparator = _value(data)
    interp, abnormal = _interpretation(data)
    rr = _range(data, codes, unit)
    if abnormal is None:
        abnormal = _out_of_range(value, rr)
    components = []
    for comp in data.get("component") or ():
        if not isinstance(comp, dict):
            continue
        ccodes = concept_codings(comp.get("code"))
        cvalue, cunit, _ = _value(comp)
        cinterp, cabn = _interpretation(comp)
        if cabn is None:
            cabn = _out_of_range(cvalue, _range(comp, ccodes, cunit))
        components.append(Component(label=concept_text(comp.get("code")) or "component", codes=ccodes,
                                    value=cvalue, unit=cunit, abnormal=cabn))
    if abnormal is None and any(c.abnormal for c in components):
        abnormal = True
    effective, end = _when(data, "effective")
    if effective is None:
        effective = data.get("issued")
    related = [k for k in (refs.resolve_key(m, data) for m in data.get("hasMember") or ()) if k]
    details = {}
    if comparator:
        details["comparator"] = comparator
    return ClinicalFact(
        key=key, resource_type="Observation", category=_obs_category(data),
        label=concept_text(data.get("code")) or "Observation", codes=codes, value=value, unit=unit,
        components=components, reference_range=rr, interpretation=interp, abnormal=abnormal,
        effective=effective, end=end, status=data.get("status"), related=related, details=details,
    )


def _condition(key: str, data: dict, refs: ReferenceIndex) -> ClinicalFact:
    onset, _ = _when(data, "onset")
    abatement, _ = _when(data, "abatement")
    details = {}
    ver = _status(data, "verificationStatus")
    if ver:
        details["verification"] = ver
    if data.get("recordedDate"):
        details["recorded"] = data["recordedDate"]
    return ClinicalFact(
        key=key, resource_type="Condition", category=Category.condition,
        label=concept_text(data.get("code")) or "Condition", codes=concept_codings(data.get("code")),
        effective=onset or data.get("recordedDate"), end=abatement,
        status=_status(data, "clinicalStatus") or ("resolved" if abatement else None), details=details,
    )


def medication_concept(data: dict, refs: ReferenceIndex) -> tuple[str, list[Coding]]:
    concept = data.get("medicationCodeableConcept")
    if concept is None and data.get("medicationReference") is not None:
        hit = refs.resolve(data["medicationReference"], data)
        if hit is not None:
            concept = hit.data.get("code")
        elif isinstance(data["medicationReference"], dict) and data["medicationReference"].get("display"):
            return data["medicationReference"]["display"], []
    return concept_text(concept) or "Medication", concept_codings(concept)


def _dosage_text(dosages: object) -> str | None:
    if not isinstance(dosages, list):
        dosages = [dosages] if isinstance(dosages, dict) else []
    texts = []
    for d in dosages:
        if not isinstance(d, dict):
            continue
        if d.get("text"):
            texts.append(str(d["text"]))
            continue
        parts = []
        for dr in d.get("doseAndRate") or ():
            q = (dr or {}).get("doseQuantity")
            if isinstance(q, dict) and q.get("value") is not None:
                parts.append("dose " + _render_value(float(q["value"]), q.get("unit")))
        rep = ((d.get("timing") or {}).get("repeat") or {})
        if rep.get("frequency") and rep.get("period"):
            parts.append(f"{rep['frequency']}x per {rep['period']} {rep.get('periodUnit', '')}".strip())
        if d.get("asNeededBoolean"):
            parts.append("as needed")
        if parts:
            texts.append(", ".join(parts))
    return "; ".join(texts) or None


def _medication(key: str, data: dict, refs: ReferenceIndex) -> ClinicalFact:
    rtype = data["resourceType"]
    label, codes = medication_concept(data, refs)
    if rtype == "MedicationRequest":
        effective, end = data.get("authoredOn"), None
        validity = (data.get("dispenseRequest") or {}).get("validityPeriod") or {}
        end = validity.get("end")
        dosage = _dosage_text(data.get("dosageInstruction"))
    elif rtype == "MedicationDispense":
        effective, end = data.get("whenHandedOver") or data.get("whenPrepared"), None
        dosage = _dosage_text(data.get("dosageInstruction"))
    elif rtype == "MedicationStatement":
        effective, end = _when(data, "effective")
        effective = effective or data.get("dateAsserted")
        dosage = _dosage_text(data.get("dosage"))
    else:  # MedicationAdministration
        effective, end = _when(data, "effective")
        dosage = _dosage_text(data.get("dosage"))
    details = {"kind": rtype}
    if dosage:
        details["dosage"] = dosage
    if data.get("intent"):
        details["intent"] = data["intent"]
    reasons = [k for k in (refs.resolve_key(r, data) for r in data.get("reasonReference") or ()) if k]
    return ClinicalFact(key=key, resource_type=rtype, category=Category.medication, label=label, codes=codes,
                        effective=effective, end=end, status=data.get("status"), related=reasons, details=details)


def _procedure(key: str, data: dict, refs: ReferenceIndex) -> ClinicalFact:
    effective, end = _when(data, "performed")
    reasons = [k for k in (refs.resolve_key(r, data) for r in data.get("reasonReference") or ()) if k]
    details = {}
    if data.get("bodySite"):
        details["body_site"] = concept_text(data["bodySite"])
    return ClinicalFact(key=key, resource_type="Procedure", category=Category.procedure,
                        label=concept_text(data.get("code")) or "Procedure", codes=concept_codings(data.get("code")),
                        effective=effective, end=end, status=data.get("status"), related=reasons, details=details)


def _immunization(key: str, data: dict, refs: ReferenceIndex) -> ClinicalFact:
    effective, _ = _when(data, "occurrence")
    return ClinicalFact(key=key, resource_type="Immunization", category=Category.immunization,
                        label=concept_text(data.get("vaccineCode")) or "Immunization",
                        codes=concept_codings(data.get("vaccineCode")), effective=effective or data.get("recorded"),
                        status=data.get("status"))


def _allergy(key: str, data: dict, refs: ReferenceIndex) -> ClinicalFact:
    onset, _ = _when(data, "onset")
    reactions = []
    for reaction in data.get("reaction") or ():
        for m in (reaction or {}).get("manifestation") or ():
            text = concept_text(m)
            if text:
                reactions.append(text)
    details = {k: data[k] for k in ("criticality", "type") if isinstance(data.get(k), str)}
    cats = [c for c in data.get("category") or () if isinstance(c, str)]
    if cats:
        details["category"] = ", ".join(cats)
    if reactions:
        details["reactions"] = reactions
    return ClinicalFact(key=key, resource_type="AllergyIntolerance", category=Category.allergy,
                        label=concept_text(data.get("code")) or "Allergy", codes=concept_codings(data.get("code")),
                        effective=onset or data.get("recordedDate"), status=_status(data, "clinicalStatus"),
                        details=details)


def _encounter(key: str, data: dict, refs: ReferenceIndex) -> ClinicalFact:
    effective, end = _when(data, "period")
    cls = data.get("class")
    cls_code = cls.get("code") if isinstance(cls, dict) else None
    label = concept_text(data.get("type")) or (cls.get("display") if isinstance(cls, dict) else None) or "Encounter"
    details = {}
    if cls_code:
        details["class"] = cls_code
    reason = concept_text(data.get("reasonCode"))
    if reason:
        details["reason"] = reason
    types = []
    for t in data.get("type") or ():
        types.extend(concept_codings(t))
    return ClinicalFact(key=key, resource_type="Encounter", category=Category.encounter, label=label, codes=types,
                        effective=effective, end=end, status=data.get("status"), details=details)


#: DICOM modality codes (CID 29) in words, for labels a clinician would search ("knee x-ray", "CT").
MODALITY_WORDS = {
    "DX": "Digital radiography (X-ray)", "CR": "Computed radiography (X-ray)", "RG": "Radiographic imaging (X-ray)",
    "CT": "CT scan", "MR": "MRI", "US": "Ultrasound", "MG": "Mammography", "NM": "Nuclear medicine", "PT": "PET",
    "XA": "X-ray angiography", "RF": "Fluoroscopy", "OT": "Imaging", "ECG": "Electrocardiogram", "IVUS": "Intravascular ultrasound",
    "OCT": "Optical coherence tomography", "OP": "Ophthalmic photography", "SM": "Slide microscopy", "DOC": "Document",
}


def _imaging(key: str, data: dict, refs: ReferenceIndex) -> ClinicalFact:
    modalities = [c.get("code") for c in data.get("modality") or () if isinstance(c, dict) and c.get("code")]
    displays = {c.get("code"): c.get("display") for c in data.get("modality") or () if isinstance(c, dict)}
    sites = []
    for s in data.get("series") or ():
        if not isinstance(s, dict):
            continue
        m = (s.get("modality") or {}).get("code")
        if m and m not in modalities:
            modalities.append(m)
        if m and (s.get("modality") or {}).get("display"):
            displays.setdefault(m, s["modality"]["display"])
        site = (s.get("bodySite") or {}).get("display")
        if site and site not in sites:
            sites.append(site)
    words = [displays.get(m) or MODALITY_WORDS.get(m, m) for m in modalities]
    described = " of ".join(filter(None, [", ".join(words), ", ".join(sites)]))
    label = (data.get("description") or concept_text(data.get("procedureCode"))
             or (f"{described} ({', '.join(modalities)})" if modalities else described) or "Imaging study")
    details: dict[str, Any] = {}
    if modalities:
        details["modality"] = modalities
    if sites:
        details["body_site"] = sites
    n = data.get("numberOfInstances")
    if n is not None:
        details["instances"] = n
    return ClinicalFact(key=key, resource_type="ImagingStudy", category=Category.imaging, label=label,
                        codes=concept_codings(data.get("procedureCode", [None])[0] if data.get("procedureCode") else None),
                        effective=data.get("started"), status=data.get("status"), details=details)


def _diagnostic_report(key: str, data: dict, refs: ReferenceIndex) -> ClinicalFact:
    effective, end = _when(data, "effective")
    texts = [t for t in (decode_attachment(a) for a in data.get("presentedForm") or ()) if t]
    related = [k for k in (refs.resolve_key(r, data) for r in data.get("result") or ()) if k]
    details = {}
    if data.get("conclusion"):
        details["conclusion"] = data["conclusion"]
    text = "\n\n".join(texts) if texts else None
    category = Category.note if text else Category.report
    cat_text = concept_text(data.get("category"))
    if cat_text and not text and cat_text.lower() in ("radiology", "imaging"):
        category = Category.imaging
    if cat_text:
        details["category"] = cat_text
    return ClinicalFact(key=key, resource_type="DiagnosticReport", category=category,
                        label=concept_text(data.get("code")) or "Report", codes=concept_codings(data.get("code")),
                        effective=effective or data.get("issued"), end=end, status=data.get("status"),
                        related=related, details=details, text=text)


def _document(key: str, data: dict, refs: ReferenceIndex) -> ClinicalFact:
    texts = []
    for content in data.get("content") or ():
        text = decode_attachment((content or {}).get("attachment"))
        if text:
            texts.append(text)
    period = (data.get("context") or {}).get("period") or {}
    effective = data.get("date") or period.get("start")
    label = concept_text(data.get("type")) or data.get("description") or "Document"
    details = {}
    cat = concept_text(data.get("category"))
    if cat:
        details["category"] = cat
    if not texts:
        details["content"] = "no inline text (attachment by URL or binary)"
    return ClinicalFact(key=key, resource_type="DocumentReference", category=Category.note, label=label,
                        codes=concept_codings(data.get("type")), effective=effective, end=period.get("end"),
                        status=data.get("docStatus") or data.get("status"), details=details,
                        text="\n\n".join(texts) if texts else None)


def _generic(key: str, data: dict, refs: ReferenceIndex) -> ClinicalFact | None:
    concept = None
    for name in ("code", "type", "category", "vaccineCode", "description"):
        if data.get(name):
            concept = data[name]
            break
    label = concept if isinstance(concept, str) else concept_text(concept)
    if label is None and isinstance(data.get("title"), str):
        label = data["title"]
    effective, end = _when(data, "effective", "occurrence", "period", "performed", "authoredOn", "created",
                            "date", "recorded", "issued", "started", "onset")
    codes = concept_codings(concept) if isinstance(concept, dict) else []
    return ClinicalFact(key=key, resource_type=data["resourceType"], category=Category.other,
                        label=label or data["resourceType"], codes=codes, effective=effective, end=end,
                        status=_status(data, "status", "lifecycleStatus"))


def _observation_or_generic(key: str, data: dict, refs: ReferenceIndex) -> ClinicalFact:
    return _observation(key, data, refs)


_BUILDERS = {
    "Observation": _observation_or_generic,
    "Condition": _condition,
    "MedicationRequest": _medication,
    "MedicationStatement": _medication,
    "MedicationAdministration": _medication,
    "MedicationDispense": _medication,
    "Procedure": _procedure,
    "Immunization": _immunization,
    "AllergyIntolerance": _allergy,
    "Encounter": _encounter,
    "ImagingStudy": _imaging,
    "DiagnosticReport": _diagnostic_report,
    "DocumentReference": _document,
}


def range_text(rr: RefRange | None) -> str | None:
    """``70-99 mg/dL``, ``>=40 mg/dL`` or ``<=200 mg/dL``; the range's text when it has no numbers."""
    if rr is None:
        return None
    unit = f" {rr.unit}" if rr.unit else ""
    if rr.low is not None and rr.high is not None:
        return f"{format_number(float(rr.low))}-{format_number(float(rr.high))}{unit}"
    if rr.low is not None:
        return f">={format_number(float(rr.low))}{unit}"
    if rr.high is not None:
        return f"<={format_number(float(rr.high))}{unit}"
    return rr.text


def render_line(fact: ClinicalFact) -> str:
    """One line for prompts and listings: date, category, label, value, status."""
    parts = [fact.day or "undated", fact.category.value, fact.label]
    if fact.components:
        comps = "; ".join(f"{c.label} {_render_value(c.value, c.unit)}{' (abnormal)' if c.abnormal else ''}"
                          for c in fact.components if c.value is not None)
        if comps:
            parts.append(comps)
    value = _render_value(fact.value, fact.unit, fact.details.get("comparator"))
    if value:
        parts.append(f"= {value}")
    ref = range_text(fact.reference_range)
    if ref:
        parts.append(f"(ref {ref})")
    if fact.abnormal:
        parts.append("ABNORMAL" + (f" [{','.join(fact.interpretation)}]" if fact.interpretation else ""))
    if fact.end and fact.category in (Category.condition,):
        parts.append(f"resolved {fact.end[:10]}")
    elif fact.end and fact.category in (Category.medication, Category.encounter, Category.procedure):
        parts.append(f"until {fact.end[:10]}")
    for name in ("dosage", "reactions", "criticality", "reason", "conclusion"):
        value = fact.details.get(name)
        if value:
            parts.append(f"{name}: {', '.join(value) if isinstance(value, list) else value}")
    if fact.status:
        parts.append(f"[{fact.status}]")
    return " ".join(str(p) for p in parts)


def today_utc() -> date:
    return datetime.now(timezone.utc).date()
