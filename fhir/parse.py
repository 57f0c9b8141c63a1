"""Validation of raw resources with ``fhir.resources`` R4B models, and quarantine of the invalid.

Lenient mode (the default) quarantines an invalid resource with where it was read, its
``resourceType/id`` and the failing field path, and goes on; strict mode raises at the first one.
Resources from another FHIR version (STU3, R5) are not R4 data: they end the read with a one-line
:class:`~chartwise.fhir.errors.InputError` naming the file and the marker that gave it away.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache

from pydantic import BaseModel, ValidationError

from .errors import InputError, ValidationFailure
from .sources import Origin, RawResource

#: Resource types that exist only in STU3 (renamed or removed in R4).
STU3_ONLY = {
    "ProcedureRequest", "ReferralRequest", "DeviceComponent", "EligibilityRequest", "EligibilityResponse",
    "EnrollmentRequest", "EnrollmentResponse", "ProcessRequest", "ProcessResponse", "DataElement",
    "ServiceDefinition", "ImagingManifest", "BodySite", "Sequence", "ExpansionProfile",
}
#: Resource types that exist only in R5.
R5_ONLY = {
    "ActorDefinition", "ArtifactAssessment", "ConditionDefinition", "DeviceDispense", "DeviceUsage",
    "EncounterHistory", "FormularyItem", "GenomicStudy", "ImagingSelection", "InventoryItem",
    "InventoryReport", "NutritionIntake", "Permission", "Requirements", "TestPlan",
    "Transport", "RequestOrchestration",
}
_VERSION_WORDS = {"3.0": "STU3", "1.0": "DSTU2", "4.3": "R4B", "5.0": "R5", "6.0": "R6"}


class Quarantined(BaseModel):
    """A resource that failed validation, kept with where it came from and why."""

    origin: str
    resource_type: str | None = None
    id: str | None = None
    field: str = ""
    reason: str

    @property
    def key(self) -> str | None:
        return f"{self.resource_type}/{self.id}" if self.resource_type and self.id else None

    def line(self) -> str:
        who = self.key or self.resource_type or "entry"
        where = f" field {self.field}" if self.field else ""
        return f"{self.origin}: {who}{where}: {self.reason}"


@dataclass(slots=True)
class Accepted:
    """A resource that validated; its JSON is kept as read (the model is not kept)."""

    data: dict
    origin: Origin
    full_url: str | None

    @property
    def resource_type(self) -> str:
        return self.data["resourceType"]

    @property
    def id(self) -> str | None:
        return self.data.get("id")


@lru_cache(maxsize=None)
def _model(resource_type: str) -> type | None:
    from fhir.resources.R4B import get_fhir_model_class

    try:
        return get_fhir_model_class(resource_type)
    except (ValueError, KeyError, AttributeError, ImportError):
        return None


def validate_resource(raw: RawResource) -> Accepted | Quarantined:
    """Validate one resource against its R4B model."""
    data = raw.data
    origin = str(raw.origin)
    rtype = data.get("resourceType") if isinstance(data, dict) else None
    rid = data.get("id") if isinstance(data, dict) else None
    rid = rid if isinstance(rid, str) else None
    if not isinstance(rtype, str):
        return Quarantined(origin=origin, field="resourceType", reason="missing resourceType")
    version = other_version_marker(data)
    if version:
        raise InputError(f"{origin}: {rtype}{'/' + rid if rid else ''} is {version}, not FHIR R4; convert it to R4 first")
    model = _model(rtype)
    if model is None:
        return Quarantined(origin=origin, resource_type=rtype, id=rid, field="resourceType",
                           reason=f"unknown FHIR R4 resource type {rtype!r}")
    try:
        model.model_validate(data)
    except ValidationError as err:
        field, reason = describe_validation_error(err)
        if _may_be_stu3(rtype, field) and _valid_in_stu3_only(rtype, data, field):
            raise InputError(f"{origin}: {rtype}{'/' + rid if rid else ''} is FHIR STU3, not R4 "
                             f"(field {field}: {reason}); convert it to R4 first") from err
        return Quarantined(origin=origin, resource_type=rtype, id=rid, field=field, reason=reason)
    except (TypeError, ValueError, LookupError, AttributeError) as err:  # plain errors from a few fhir.resources validators
        return Quarantined(origin=origin, resource_type=rtype, id=rid, reason=" ".join(str(err).split())[:300])
    return Accepted(data=data, origin=raw.origin, full_url=raw.full_url)


def describe_validation_error(err: ValidationError) -> tuple[str, str]:
    """The first failing field as a dotted path (``component[1].valueQuantity.value``) and a short reason."""
    errors = err.errors(include_url=False)
    if not errors:
        return "", " ".join(str(err).split())[:300]
    first = errors[0]
    path = ""
    for part in first.get("loc", ()):
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in ("__root__",):
            continue
        else:
            path += ("." if path else "") + str(part)
    msg = " ".join(str(first.get("msg", "invalid")).split())
    if msg.startswith("Invalid JSON"):
        msg = "wrong type (expected an object or list here)"
    msg = msg.removeprefix("Value error, ")
    extra = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return path, f"{msg}{extra}"[:300]


def other_version_marker(data: dict) -> str | None:
    """'STU3' or 'R5' when the resource itself says it is not R4 (type, fhirVersion, profile)."""
    rtype = data.get("resourceType")
    if rtype in STU3_ONLY:
        return f"STU3 (resource type {rtype} does not exist in R4)"
    if rtype in R5_ONLY:
        return f"R5 (resource type {rtype} does not exist in R4)"
    version = data.get("fhirVersion")
    if isinstance(version, str) and not version.startswith("4.0"):
        return f"{_VERSION_WORDS.get(version[:3], version)} (fhirVersion {version})"
    meta = data.get("meta")
    profiles = meta.get("profile") if isinstance(meta, dict) else None
    if isinstance(profiles, list):
        for profile in profiles:
            if isinstance(profile, str):
                low = profile.lower()
                if "/stu3/" in low or "/dstu2/" in low:
                    return f"STU3 (meta.profile {profile})"
                if "/r5/" in low or "hl7.org/fhir/5.0" in low:
                    return f"R5 (meta.profile {profile})"
    return None


#: (resourceType, first failing R4 field) pairs already seen to be invalid STU3 as well.  A bulk export
#: repeats the same defect thousands of times; one STU3 validation per kind of failure is enough.
_NOT_STU3: set[tuple[str, str]] = set()


def _may_be_stu3(rtype: str, field: str) -> bool:
    return (rtype, field) not in _NOT_STU3


def _valid_in_stu3_only(rtype: str, data: dict, field: str = "") -> bool:
    """A resource invalid in R4 that is valid STU3 is STU3 data (Condition.clinicalStatus as a code, ...)."""
    try:
        from fhir.resources.STU3 import get_fhir_model_class
    except ImportError:
        return False
    try:
        get_fhir_model_class(rtype).model_validate(data)
    except Exception:  # noqa: BLE001 - any failure means "not STU3 either"
        _NOT_STU3.add((rtype, field))
        return False
    return True


def validate_all(
    raws: Iterable[RawResource],
    *,
    strict: bool = False,
    on_quarantine: Callable[[Quarantined], None] | None = None,
) -> Iterator[Accepted]:
    """Validate a stream; yield the accepted, hand the quarantined to ``on_quarantine``.

    In strict mode the first invalid resource raises :class:`ValidationFailure`.
    """
    for raw in raws:
        result = validate_resource(raw)
        if isinstance(result, Accepted):
            yield result
            continue
        if strict:
            raise ValidationFailure(f"{result.line()} (strict mode; drop --strict to quarantine and go on)")
        if on_quarantine is not None:
            on_quarantine(result)
