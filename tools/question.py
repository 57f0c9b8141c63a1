"""Deterministic question analysis: what is asked about, when, and what kind of answer.

No model is involved.  :func:`analyze` finds

* **dates** in common formats: ``2021-03-05``, ``3/5/2021`` and ``3/5/21`` (US month/day),
  ``March 5, 2021``, ``Mar 5 2021``, ``5 Mar 2021``, ``5th of March 2021``, ``March 2021``, a bare year
  ``2021``;
* **relative time** against a reference ``now`` (the record's last date unless given): ``last 6
  months``, ``past 2 years``, ``in the last year``, ``this year``, ``last year``, ``since 2020``,
  ``before March 2021``, ``between 2019 and 2021``, ``yesterday``/``today``;
* the **question type**: ``latest``, ``at_date``, ``window``, ``count``, ``abnormal``, ``first``,
  ``ever``, ``list``, ``note`` (several can hold; ``types`` is ordered by precedence);
* **category cues** (vaccine, allergy, medication, condition, procedure, note, lab, vital, encounter);
* the **concept phrase**: the words left once cue words, dates and stop words are removed.
"""
from __future__ import annotations

import calendar
import re
from datetime import date, datetime, timedelta

from pydantic import BaseModel, Field

MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_abbr) if name})
MONTHS["sept"] = 9
_MON = r"(?P<mon>jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
_NUM = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
        "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "eighteen": 18, "twenty-four": 24}


class DateSpan(BaseModel):
    start: date
    end: date  # inclusive
    text: str
    precision: str = "day"  # day, month, year, range


class QuestionAnalysis(BaseModel):
    question: str
    types: list[str] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)
    date_from: date | None = None
    date_to: date | None = None
    at_date: date | None = None
    date_text: list[str] = Field(default_factory=list)
    concept_text: str = ""
    vocab_text: str = Field(default="", description="the question without its date phrases (for vocabulary matching)")
    generic: bool = Field(default=False, description="the concept words only name a category ('last vaccine')")
    now: date | None = None

    @property
    def primary(self) -> str:
        return self.types[0] if self.types else "latest"


def _year(text: str) -> int:
    y = int(text)
    if y < 100:
        y += 2000 if y <= (date.today().year % 100) + 1 else 1900
    return y


def _safe_date(y: int, m: int, d: int) -> date | None:
    try:
        return date(y, m, d)
    except ValueError:
        return None


def _month_span(y: int, m: int) -> tuple[date, date]:
    return date(y, m, 1), date(y, m, calendar.monthrange(y, m)[1])


def _add_months(d: date, months: int) -> date:
    m = d.month - 1 + months
    y = d.year + m // 12
    m = m % 12 + 1
    return date(y, m, min(d.day, calendar.monthrange(y, m)[1]))


_DAY_PATTERNS = [
    re.compile(r"(?<!\d)(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})(?!\d)"),
    re.compile(r"(?<![\d/])(?P<m>\d{1,2})/(?P<d>\d{1,2})/(?P<y>\d{4}|\d{2})(?![\d/])"),
    re.compile(r"(?<![\d.])(?P<m>\d{1,2})\.(?P<d>\d{1,2})\.(?P<y>\d{4})(?![\d.])"),
    re.compile(r"(?<![\d-])(?P<m>\d{1,2})-(?P<d>\d{1,2})-(?P<y>\d{4})(?![\d-])"),
    re.compile(_MON + r"\s+(?P<d>\d{1,2})(?:st|nd|rd|th)?,?\s+(?P<y>\d{4})", re.I),
    re.compile(r"(?<!\d)(?P<d>\d{1,2})(?:st|nd|rd|th)?(?:\s+of)?\s+" + _MON + r",?\s+(?P<y>\d{4})", re.I),
    re.compile(r"(?<!\d)(?P<d>\d{1,2})-" + _MON + r"-(?P<y>\d{4})", re.I),
]
_MONTH_YEAR = re.compile(r"(?<![\w])" + _MON + r",?\s+(?P<y>\d{4})(?!\d)", re.I)
_MONTH_YEAR_NUM = re.compile(r"(?<![\d/])(?P<m>\d{1,2})/(?P<y>\d{4})(?![\d/])")
_YEAR = re.compile(r"(?<![\d/.-])(?P<y>(?:19|20)\d{2})(?![\d/.-])")


def find_dates(text: str) -> list[DateSpan]:
    """Absolute dates in ``text`` (days, then months, then years), without overlaps, in text order."""
    taken: list[tuple[int, int]] = []
    found: list[tuple[int, DateSpan]] = []

    def free(a: int, b: int) -> bool:
        return all(b <= s or a >= e for s, e in taken)

    for pat in _DAY_PATTERNS:
        for m in pat.finditer(text):
            if not free(*m.span()):
                continue
            mon = m.groupdict().get("mon")
            month = MONTHS.get(mon.lower().rstrip(".")) if mon else int(m.group("m"))
            d = _safe_date(_year(m.group("y")), month or 0, int(m.group("d"))) if month else None
            if d is None:
                continue
            taken.append(m.span())
            found.append((m.start(), DateSpan(start=d, end=d, text=m.group(0), precision="day")))
    for pat in (_MONTH_YEAR, _MONTH_YEAR_NUM):
        for m in pat.finditer(text):
            if not free(*m.span()):
                continue
            mon = m.groupdict().get("mon")
            month = MONTHS.get(mon.lower().rstrip(".")) if mon else int(m.group("m"))
            if not month or not 1 <= month <= 12:
                continue
            a, b = _month_span(int(m.group("y")), month)
            taken.append(m.span())
            found.append((m.start(), DateSpan(start=a, end=b, text=m.group(0), precision="month")))
    for m in _YEAR.finditer(text):
        if not free(*m.span()):
            continue
        y = int(m.group("y"))
        taken.append(m.span())
        found.append((m.start(), DateSpan(start=date(y, 1, 1), end=date(y, 12, 31), text=m.group(0), precision="year")))
    found.sort(key=lambda x: x[0])
    return [d for _, d in found]


_REL = re.compile(r"\b(?:in\s+the\s+|over\s+the\s+|during\s+the\s+|within\s+the\s+|for\s+the\s+)?(?:last|past|previous|prior)\s+"
                  r"(?P<n>\d+|a|an|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|eighteen|twenty-four)?\s*"
                  r"(?P<unit>days?|weeks?|months?|years?|yrs?|mos?)\b", re.I)
_REL_AGO = re.compile(r"\b(?P<n>\d+|a|an|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)\s+(?P<unit>days?|weeks?|months?|years?)\s+ago\b", re.I)


def _rel_start(now: date, n: int, unit: str) -> date:
    unit = unit.lower()
    if unit.startswith("d"):
        return now - timedelta(days=n)
    if unit.startswith("w"):
        return now - timedelta(weeks=n)
    if unit.startswith("mo"):
        return _add_months(now, -n)
    return _add_months(now, -12 * n)


_TYPE_CUES: list[tuple[str, re.Pattern[str]]] = [
    ("list", re.compile(r"\b(allerg\w*|list (?:all|every|the)|all (?:of )?(?:the|her|his|their) |what (?:are|were) (?:all )?(?:her|his|their|the) (?:allerg|problems|medications|meds|diagnoses|conditions|vaccin|immuni)|problem list|active (?:medications|meds|problems)|current (?:medications|meds|problems))", re.I)),
    ("count", re.compile(r"\b(how many|how often|number of|count of|times?\b.*\b(?:measured|checked|tested|given|done)|were there)", re.I)),
    ("first", re.compile(r"\b(first|earliest|initial(?:ly)?|onset|originally|since when|when (?:was|were|did) (?:she|he|they|the patient)? ?(?:first )?(?:diagnosed|start|develop|begin|get diagnosed)|when was .* diagnosed|diagnosed with .* when)", re.I)),
    ("abnormal", re.compile(r"\b(abnormal|out of range|out-of-range|elevated|high|low|critical|flagged|raised|deranged|worrying)\b", re.I)),
    ("ever", re.compile(r"\b(ever|any history|history of|has (?:she|he|they|the patient) (?:had|been|taken|received|got)|have (?:they|you) (?:had|been)|was (?:she|he|they|the patient) (?:ever )?(?:on|given|prescribed|started)|been on|tried)\b", re.I)),
    ("note", re.compile(r"\b(notes?|documented|mentioned|said|says|wrote|written|narrative|chief complaint|hpi|history of present illness|assessment|plan\b|report(?:ed)? in|describe[sd]?|social history|discharge summary|progress note|consult)", re.I)),
    ("latest", re.compile(r"\b(latest|last|most recent|recent|current|currently|now|newest|today|lately|presently)\b", re.I)),
]

_CATEGORY_CUES: list[tuple[str, re.Pattern[str]]] = [
    ("immunization", re.compile(r"\b(vaccin\w*|immuni[sz]\w*|shots?|jabs?|booster|inoculat\w*)\b", re.I)),
    ("allergy", re.compile(r"\b(allerg\w*|intoleran\w*|adverse reactions?)\b", re.I)),
    ("medication", re.compile(r"\b(medications?|meds?|drugs?|prescri\w*|taking|dose|dosage|tablets?|pills?|rx|ordered|started on|put on|been on|was on|on any)\b", re.I)),
    ("condition", re.compile(r"\b(diagnos\w*|conditions?|problems?|disease|disorder|history of|dx|comorbid\w*)\b", re.I)),
    ("procedure", re.compile(r"\b(procedures?|surger\w*|operation|operated|performed|underwent|screening)\b", re.I)),
    ("note", _TYPE_CUES[5][1]),
    ("encounter", re.compile(r"\b(visits?|encounters?|admissions?|admitted|hospitali[sz]\w*|seen in|ed visit|er visit|appointments?)\b", re.I)),
    ("lab", re.compile(r"\b(labs?|level|levels|tests?|results?|values?|panel|blood work|bloodwork|measured)\b", re.I)),
    ("vital", re.compile(r"\b(vitals?|vital signs?)\b", re.I)),
    ("imaging", re.compile(r"\b(imaging|x-?rays?|radiograph\w*|radiology|ct scans?|cat scans?|mri|ultrasounds?|"
                           r"sonogra\w*|mammogra\w*|dicom|scans?)\b", re.I)),
]

#: Words that name a FHIR resource type: among equally good concepts, one carried by the named type wins
#: ("imaging study" -> the ImagingStudy, not the Procedure of the same X-ray).
_TYPE_WORDS: list[tuple[str, re.Pattern[str]]] = [
    ("ImagingStudy", re.compile(r"\b(imaging stud(?:y|ies)|radiology stud(?:y|ies)|dicom stud(?:y|ies))\b", re.I)),
    ("DiagnosticReport", re.compile(r"\b(reports?|read|impression)\b", re.I)),
    ("Procedure", re.compile(r"\b(procedures?|performed|underwent|surger\w*|operation)\b", re.I)),
    ("ServiceRequest", re.compile(r"\b(ordered|orders?|referr\w*|requested)\b", re.I)),
    ("MedicationRequest", re.compile(r"\b(prescri\w*|rx)\b", re.I)),
    ("MedicationAdministration", re.compile(r"\b(administ\w*|given|infused|injected)\b", re.I)),
    ("Condition", re.compile(r"\b(diagnos\w*|dx)\b", re.I)),
    ("Encounter", re.compile(r"\b(visits?|encounters?|admissions?|admitted)\b", re.I)),
]


def _cues(table: list[tuple[str, re.Pattern[str]]], text: str) -> list[str]:
    """The names of a cue table whose pattern occurs in ``text``, in table order."""
    return [name for name, pat in table if pat.search(text)]


def named_resource_types(question: str) -> list[str]:
    """Resource types the question names in words, most specific first."""
    return _cues(_TYPE_WORDS, question)


_STOP = set("""a about after all also am an and any anything are as at be been before being between but by can
could did do does done during each ever every for from get got had has have having he her hers him his how i
if in into is it its last latest let me most my new newest no not now of on once one or our out over past
patient patients please prior recent recently s she show since so some tell than that the their them then
there these they this those through to today up us value values was we were what whats when where which while
who whom why will with within would you your yrs year years month months week weeks day days ago previous
current currently first earliest initially onset ever many often number count times time result results
level levels test tests lab labs measured checked reading readings abnormal high low elevated list all
history documented mentioned said note notes chart record records taken given prescribed ordered started
diagnosed diagnosis find look give whether has hasn pt y o yo old found check seen noted see""".split())


def analyze(question: str, now: date | None = None) -> QuestionAnalysis:
    """The deterministic reading of ``question``; ``now`` anchors relative time (default: today)."""
    ref = now or date.today()
    q = question.strip()
    out = QuestionAnalysis(question=q, now=ref)
    scrub = q
    # relative windows
    m = _REL.search(q)
    if m:
        n = m.group("n")
        count = 1 if not n else (int(n) if n.isdigit() else _NUM.get(n.lower(), 1))
        out.date_from, out.date_to = _rel_start(ref, count, m.group("unit")), ref
        out.date_text.append(m.group(0))
        scrub = scrub.replace(m.group(0), " ")
    m2 = _REL_AGO.search(q)
    if m2 and out.date_from is None:
        n = m2.group("n")
        count = int(n) if n.isdigit() else _NUM.get(n.lower(), 1)
        out.at_date = _rel_start(ref, count, m2.group("unit"))
        out.date_text.append(m2.group(0))
        scrub = scrub.replace(m2.group(0), " ")
    if re.search(r"\bthis year\b", q, re.I) and out.date_from is None:
        out.date_from, out.date_to = date(ref.year, 1, 1), ref
        out.date_text.append("this year")
        scrub = re.sub(r"\bthis year\b", " ", scrub, flags=re.I)
    elif re.search(r"\blast year\b", q, re.I) and out.date_from is None:
        out.date_from, out.date_to = date(ref.year - 1, 1, 1), date(ref.year - 1, 12, 31)
        out.date_text.append("last year")
        scrub = re.sub(r"\blast year\b", " ", scrub, flags=re.I)
    elif re.search(r"\byesterday\b", q, re.I):
        out.at_date = ref - timedelta(days=1)
    elif re.search(r"\btoday\b", q, re.I):
        out.at_date = ref
    # absolute dates
    spans = find_dates(q)
    for s in spans:
        scrub = scrub.replace(s.text, " ")
        out.date_text.append(s.text)
    lower = q.lower()
    if spans:
        if len(spans) >= 2 and re.search(r"\b(between|from)\b", lower):
            out.date_from, out.date_to = spans[0].start, spans[1].end
        else:
            s = spans[0]
            prefix = lower[: lower.find(s.text.lower())] if s.text.lower() in lower else ""
            tail = prefix[-24:]
            if re.search(r"\b(since|after|from)\s*(?:the\s+)?$", tail):
                out.date_from, out.date_to = s.start, ref
            elif re.search(r"\b(before|prior to|until|up to|by|as of)\s*(?:the\s+)?$", tail):
                out.date_from, out.date_to = None, s.end
                if s.precision == "day":
                    out.at_date = s.start
            elif s.precision == "day":
                out.at_date = s.start
            else:
                out.date_from, out.date_to = s.start, s.end
    # types
    types = _cues(_TYPE_CUES, q)
    if out.at_date is not None and "count" not in types:
        types.insert(0, "at_date")
    if (out.date_from or out.date_to) and out.at_date is None and "window" not in types:
        types.append("window")
    if "list" in types and "count" in types:
        types.remove("list")
    # "last"/"latest" inside a relative window is not a latest cue
    if "latest" in types and out.date_text and not re.search(r"\b(latest|most recent|current|newest)\b", q, re.I):
        rest = q
        for t in out.date_text:
            rest = rest.replace(t, " ")
        if not re.search(r"\b(last|recent)\b", rest, re.I):
            types.remove("latest")
    if not types:
        types = ["latest"]
    order = ["count", "list", "first", "at_date", "abnormal", "note", "ever", "window", "latest"]
    out.types = sorted(dict.fromkeys(types), key=order.index)
    out.categories = _cues(_CATEGORY_CUES, q)
    # concept phrase
    cue_words = re.sub(r"[^\w/+&.-]+", " ", scrub)
    kept = [w for w in cue_words.split() if w.lower().strip(".") not in _STOP and not re.fullmatch(r"[\d.,/-]+", w)]
    out.concept_text = " ".join(kept).strip(" .?!,")
    out.vocab_text = " ".join(scrub.split())
    rest = out.concept_text
    for _, pat in _CATEGORY_CUES:
        rest = pat.sub(" ", rest)
    out.generic = bool(out.categories) and not rest.strip(" .?!,")
    return out


def as_date(value: str | date | datetime | None) -> date | None:
    """A date from ``YYYY-MM-DD...`` text or a date/datetime."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        spans = find_dates(str(value))
        return spans[0].start if spans else None
