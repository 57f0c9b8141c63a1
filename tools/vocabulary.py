"""Clinician words -> the vocabulary records are coded in.

A general table of how clinicians say things (abbreviations, lay words, brand names) next to the
names and codes that FHIR records carry (LOINC displays, RxNorm generic names, SNOMED condition
names).  It is used in both directions: concept documents in the index carry the clinician words of
the group they belong to, and a question's words are expanded with the group's record vocabulary.

Nothing here is tied to one record: a group only matters when the record holds a matching code or
display.
"""
from __future__ import annotations

import re
from functools import lru_cache
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Group:
    """One clinical concept: what records call it (``names``, ``codes``) and what clinicians say (``aliases``)."""

    names: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    codes: tuple[str, ...] = ()
    kind: str = "lab"  # lab, vital, medication, condition, immunization, allergy, procedure
    #: Display words that must NOT appear for a record display to belong to the group.
    exclude: tuple[str, ...] = field(default=())


def _g(names: str, aliases: str = "", codes: str = "", kind: str = "lab", exclude: str = "") -> Group:
    split = lambda s: tuple(x.strip().lower() for x in s.split("|") if x.strip())  # noqa: E731
    return Group(split(names), split(aliases), tuple(c.strip() for c in codes.split("|") if c.strip()), kind, split(exclude))


GROUPS: tuple[Group, ...] = (
    # ---- chemistry
    _g("hemoglobin a1c|glycated hemoglobin|hba1c", "a1c|hba1c|hb a1c|glycohemoglobin|glycosylated hemoglobin|sugar test|diabetes test|three month sugar|3 month sugar|long term sugar", "4548-4|17856-6|41995-2|4549-2"),
    _g("glucose", "blood sugar|sugar|bg|fbg|fasting glucose|fasting sugar|blood glucose|cbg|fingerstick|finger stick|accucheck|glu", "2339-0|2345-7|41653-7|1558-6|2341-6|15074-8|14749-6", exclude="urine|a1c"),
    _g("urea nitrogen", "bun|blood urea nitrogen|urea", "6299-2|3094-0|14937-7"),
    _g("creatinine", "cr|creat|serum creatinine|scr|kidney function", "38483-4|2160-0|14682-9", exclude="urine|clearance|ratio|albumin"),
    _g("glomerular filtration rate|egfr", "gfr|egfr|estimated gfr|kidney filtration", "33914-3|48642-3|48643-1|62238-1|69405-9|98979-8|50044-7|88293-6|88294-4"),
    _g("sodium", "na|serum sodium|salt level", "2947-0|2951-2", exclude="urine"),
    _g("potassium", "k|serum potassium|k+", "6298-4|2823-3", exclude="urine"),
    _g("chloride", "cl|serum chloride", "2069-3|2075-0", exclude="urine"),
    _g("carbon dioxide|bicarbonate", "bicarb|co2|hco3|total co2|serum bicarbonate", "20565-8|2028-9|1963-8|1959-6"),
    _g("calcium", "ca|serum calcium", "49765-1|17861-6", exclude="urine|ionized"),
    _g("magnesium", "mg|mag|serum magnesium", "19123-9|2601-3"),
    _g("phosphate|phosphorus", "phos|phosphorus", "2777-1|14879-1"),
    _g("albumin", "alb|serum albumin", "1751-7|61151-7", exclude="urine|creatinine|microalbumin"),
    _g("microalbumin creatinine ratio|albumin/creatinine", "uacr|acr|microalbumin|urine albumin", "14959-1|9318-7|32294-1"),
    _g("protein", "total protein", "2885-2", exclude="urine"),
    _g("bilirubin", "bili|t bili|total bilirubin", "1975-2|42719-5", exclude="direct|urine"),
    _g("alanine aminotransferase", "alt|sgpt|liver enzymes|lfts|lft", "1742-6|1743-4|1744-2"),
    _g("aspartate aminotransferase", "ast|sgot|liver enzymes|lfts|lft", "1920-8|30239-8"),
    _g("alkaline phosphatase", "alk phos|alp|alkphos", "6768-6"),
    _g("lactate", "lactic acid|lac", "2524-7|32693-4|2518-9"),
    _g("troponin", "trop|tni|tnt|hs troponin|cardiac enzymes", "6598-7|10839-9|42757-5|89579-7|67151-1|49563-0"),
    _g("natriuretic peptide", "bnp|nt-probnp|probnp|nt probnp", "30934-4|33762-6|42637-9|83107-3"),
    _g("c reactive protein", "crp|hs crp|hscrp", "1988-5|30522-7"),
    _g("thyrotropin|thyroid stimulating hormone", "tsh|thyroid test|thyroid function", "3016-3|11580-8"),
    _g("ferritin", "iron stores", "2276-4"),
    _g("prostate specific antigen", "psa", "2857-1|10886-0"),
    _g("inr|coagulation", "inr|pt inr|protime|prothrombin time|clotting", "6301-6|34714-6|5902-2"),
    _g("aptt|partial thromboplastin", "ptt|aptt", "3173-2|14979-9"),
    # ---- lipids
    _g("cholesterol", "total cholesterol|tc|chol", "2093-3", exclude="hdl|ldl|vldl"),
    _g("low density lipoprotein cholesterol|ldl", "ldl|bad cholesterol|ldl-c|ldl cholesterol", "18262-6|13457-7|2089-1|69419-0"),
    _g("high density lipoprotein cholesterol|hdl", "hdl|good cholesterol|hdl-c|hdl cholesterol", "2085-9"),
    _g("triglycerides", "tg|trigs|trigly", "2571-8"),
    # ---- blood count
    _g("leukocytes|white blood cells", "wbc|white count|white cell count|white blood count", "6690-2|26464-8|33256-9"),
    _g("erythrocytes|red blood cells", "rbc|red count|red cell count", "789-8|26453-1"),
    _g("hemoglobin", "hgb|hb|haemoglobin|h&h|blood count", "718-7|30313-1|20509-6", exclude="a1c|glycated|glycosylated|urine|mch"),
    _g("hematocrit", "hct|crit|h&h|packed cell volume", "4544-3|20570-8", exclude="urine"),
    _g("platelets", "plt|plts|platelet count", "777-3|26515-7|49497-1"),
    _g("mcv|mean corpuscular volume", "mcv", "787-2"),
    _g("mch|mean corpuscular hemoglobin", "mch", "785-6", exclude="concentration"),
    _g("mchc|mean corpuscular hemoglobin concentration", "mchc", "786-4"),
    _g("rdw|erythrocyte distribution width", "rdw", "21000-5|788-0"),
    _g("neutrophils", "anc|neut|polys|segs", "751-8|770-8|26499-4"),
    # ---- vitals
    _g("blood pressure", "bp|b/p|blood pressures|pressure", "85354-9|55284-4|8480-6|8462-4|35094-2", kind="vital"),
    _g("systolic blood pressure", "sbp|systolic|top number", "8480-6", kind="vital"),
    _g("diastolic blood pressure", "dbp|diastolic|bottom number", "8462-4", kind="vital"),
    _g("heart rate", "hr|pulse|pulse rate|heartrate|bpm", "8867-4|8889-8", kind="vital"),
    _g("respiratory rate", "rr|resp rate|breathing rate|respirations|resps", "9279-1", kind="vital"),
    _g("oxygen saturation", "spo2|sats|sat|o2 sat|o2 sats|pulse ox|pulse oximetry|oxygen sat|sao2", "2708-6|59408-5|20564-1", kind="vital"),
    _g("body temperature", "temp|t|fever|temperature|tmax", "8310-5|8331-1|8328-7", kind="vital"),
    _g("body weight", "wt|weight|kg|how heavy", "29463-7|3141-9", kind="vital"),
    _g("body height", "ht|height|how tall|stature", "8302-2|3137-7", kind="vital"),
    _g("body mass index", "bmi|quetelet", "39156-5", kind="vital"),
    _g("pain severity", "pain score|pain scale|pain level|pain", "72514-3|38208-5", kind="vital"),
    _g("head circumference", "ofc|head circ", "9843-4|8287-5", kind="vital"),
    _g("glasgow coma score", "gcs|glasgow", "9269-2", kind="vital"),
    # ---- medications (generic <- brand names and classes)
    _g("atorvastatin", "lipitor|statin", kind="medication"),
    _g("simvastatin", "zocor|statin", kind="medication"),
    _g("rosuvastatin", "crestor|statin", kind="medication"),
    _g("pravastatin", "pravachol|statin", kind="medication"),
    _g("metformin", "glucophage|glumetza|fortamet", kind="medication"),
    _g("insulin", "lantus|humalog|novolog|levemir|basaglar|tresiba|humulin|novolin|insulin glargine|insulin lispro|insulin aspart", kind="medication"),
    _g("glipizide", "glucotrol", kind="medication"),
    _g("sitagliptin", "januvia", kind="medication"),
    _g("empagliflozin", "jardiance|sglt2", kind="medication"),
    _g("semaglutide", "ozempic|wegovy|rybelsus|glp-1", kind="medication"),
    _g("liraglutide", "victoza|saxenda|glp-1", kind="medication"),
    _g("lisinopril", "prinivil|zestril|ace inhibitor|acei", kind="medication"),
    _g("enalapril", "vasotec|ace inhibitor", kind="medication"),
    _g("losartan", "cozaar|arb", kind="medication"),
    _g("valsartan", "diovan|arb", kind="medication"),
    _g("amlodipine", "norvasc|calcium channel blocker", kind="medication"),
    _g("hydrochlorothiazide", "hctz|microzide|water pill|thiazide", kind="medication"),
    _g("chlorthalidone", "thalitone|thiazide", kind="medication"),
    _g("furosemide", "lasix|water pill|loop diuretic", kind="medication"),
    _g("spironolactone", "aldactone", kind="medication"),
    _g("metoprolol", "lopressor|toprol|toprol xl|beta blocker", kind="medication"),
    _g("carvedilol", "coreg|beta blocker", kind="medication"),
    _g("atenolol", "tenormin|beta blocker", kind="medication"),
    _g("warfarin", "coumadin|jantoven|blood thinner", kind="medication"),
    _g("apixaban", "eliquis|blood thinner|doac", kind="medication"),
    _g("rivaroxaban", "xarelto|blood thinner|doac", kind="medication"),
    _g("clopidogrel", "plavix|antiplatelet", kind="medication"),
    _g("aspirin", "asa|baby aspirin|ecotrin|bayer", kind="medication"),
    _g("heparin", "hep|ufh|enoxaparin|lovenox", kind="medication"),
    _g("acetaminophen", "tylenol|paracetamol|apap", kind="medication"),
    _g("ibuprofen", "advil|motrin|nsaid", kind="medication"),
    _g("naproxen", "aleve|naprosyn|nsaid", kind="medication"),
    _g("oxycodone", "oxycontin|percocet|roxicodone|opioid", kind="medication"),
    _g("hydrocodone", "vicodin|norco|opioid", kind="medication"),
    _g("morphine", "ms contin|opioid", kind="medication"),
    _g("tramadol", "ultram|opioid", kind="medication"),
    _g("fentanyl", "duragesic|sublimaze|opioid", kind="medication"),
    _g("amoxicillin", "amoxil|antibiotic", kind="medication"),
    _g("amoxicillin clavulanate", "augmentin|amox-clav", kind="medication"),
    _g("azithromycin", "zithromax|z-pak|zpak|antibiotic", kind="medication"),
    _g("cephalexin", "keflex|antibiotic", kind="medication"),
    _g("ceftriaxone", "rocephin|antibiotic", kind="medication"),
    _g("ciprofloxacin", "cipro|antibiotic", kind="medication"),
    _g("levofloxacin", "levaquin|antibiotic", kind="medication"),
    _g("doxycycline", "vibramycin|antibiotic", kind="medication"),
    _g("vancomycin", "vanc|vanco|antibiotic", kind="medication"),
    _g("piperacillin tazobactam", "zosyn|pip-tazo|pip tazo|antibiotic", kind="medication"),
    _g("nitrofurantoin", "macrobid|macrodantin|antibiotic", kind="medication"),
    _g("sulfamethoxazole trimethoprim", "bactrim|septra|tmp-smx|antibiotic", kind="medication"),
    _g("penicillin", "pcn|pen vk|antibiotic", kind="medication"),
    _g("albuterol", "ventolin|proair|proventil|rescue inhaler|salbutamol", kind="medication"),
    _g("fluticasone", "flovent|flonase|advair", kind="medication"),
    _g("budesonide", "pulmicort|symbicort|entocort", kind="medication"),
    _g("montelukast", "singulair", kind="medication"),
    _g("prednisone", "deltasone|steroid|steroids", kind="medication"),
    _g("methylprednisolone", "medrol|solu-medrol|steroid", kind="medication"),
    _g("hydrocortisone", "cortef|solu-cortef|steroid", kind="medication"),
    _g("levothyroxine", "synthroid|levoxyl|thyroid pill|t4", kind="medication"),
    _g("omeprazole", "prilosec|ppi", kind="medication"),
    _g("pantoprazole", "protonix|ppi", kind="medication"),
    _g("famotidine", "pepcid|h2 blocker", kind="medication"),
    _g("ondansetron", "zofran|antiemetic", kind="medication"),
    _g("sertraline", "zoloft|ssri|antidepressant", kind="medication"),
    _g("fluoxetine", "prozac|ssri|antidepressant", kind="medication"),
    _g("citalopram", "celexa|ssri|antidepressant", kind="medication"),
    _g("escitalopram", "lexapro|ssri|antidepressant", kind="medication"),
    _g("bupropion", "wellbutrin|zyban|antidepressant", kind="medication"),
    _g("trazodone", "desyrel", kind="medication"),
    _g("alprazolam", "xanax|benzo|benzodiazepine", kind="medication"),
    _g("lorazepam", "ativan|benzo|benzodiazepine", kind="medication"),
    _g("diazepam", "valium|benzo|benzodiazepine", kind="medication"),
    _g("gabapentin", "neurontin", kind="medication"),
    _g("donepezil", "aricept", kind="medication"),
    _g("methylphenidate", "ritalin|concerta", kind="medication"),
    _g("nitroglycerin", "nitro|ntg|nitrostat", kind="medication"),
    _g("digoxin", "lanoxin", kind="medication"),
    _g("amiodarone", "cordarone|pacerone", kind="medication"),
    _g("potassium chloride", "kcl|k-dur|klor-con|potassium supplement", kind="medication"),
    _g("normal saline|sodium chloride", "ns|saline|iv fluids|0.9% nacl", kind="medication"),
    _g("naloxone", "narcan", kind="medication"),
    _g("epinephrine", "epipen|adrenaline|epi", kind="medication"),
    _g("diphenhydramine", "benadryl|antihistamine", kind="medication"),
    _g("cetirizine", "zyrtec|antihistamine", kind="medication"),
    _g("loratadine", "claritin|antihistamine", kind="medication"),
    _g("medroxyprogesterone", "depo-provera|depo", kind="medication"),
    _g("ethinyl estradiol|norethindrone|levonorgestrel|drospirenone", "birth control|oral contraceptive|the pill|ocp|yaz|loestrin|seasonique|mirena|contraceptive", kind="medication"),
    _g("nicotine", "nicotine patch|nicoderm|nicotine gum", kind="medication"),
    _g("alendronate", "fosamax|bisphosphonate", kind="medication"),
    _g("tamsulosin", "flomax", kind="medication"),
    _g("sildenafil", "viagra|revatio", kind="medication"),
    _g("allopurinol", "zyloprim", kind="medication"),
    _g("clonidine", "catapres", kind="medication"),
    _g("hydralazine", "apresoline", kind="medication"),
    _g("verapamil", "calan|isoptin", kind="medication"),
    _g("diltiazem", "cardizem", kind="medication"),
    # ---- conditions
    _g("diabetes mellitus|diabetes", "dm|t2dm|dm2|type 2 diabetes|type ii diabetes|diabetic|sugar diabetes|niddm|iddm|t1dm|diabetes", kind="condition"),
    _g("prediabetes", "pre-diabetes|impaired fasting glucose|borderline diabetes", kind="condition"),
    _g("hypertension", "htn|high blood pressure|hypertensive|elevated bp", kind="condition"),
    _g("hyperlipidemia|hypercholesterolemia|dyslipidemia", "hld|high cholesterol|lipids|hypertriglyceridemia", kind="condition"),
    _g("coronary heart disease|coronary artery disease|myocardial infarction", "cad|chd|mi|heart attack|ischemic heart disease|ihd|stemi|nstemi", kind="condition"),
    _g("heart failure", "chf|hf|hfref|hfpef|congestive heart failure|cardiac failure", kind="condition"),
    _g("atrial fibrillation", "afib|a-fib|af|a fib", kind="condition"),
    _g("chronic kidney disease", "ckd|renal insufficiency|kidney disease|chronic renal failure|esrd", kind="condition"),
    _g("acute kidney injury|acute renal failure", "aki|arf", kind="condition"),
    _g("chronic obstructive", "copd|emphysema|chronic bronchitis", kind="condition"),
    _g("asthma", "reactive airway|rad", kind="condition"),
    _g("pneumonia", "pna|cap|lung infection", kind="condition"),
    _g("urinary tract infection|cystitis", "uti|bladder infection", kind="condition"),
    _g("sepsis|septicemia", "septic|bacteremia", kind="condition"),
    _g("stroke|cerebrovascular accident|cerebral infarction", "cva|tia|brain attack", kind="condition"),
    _g("depression|depressive disorder", "mdd|major depression|low mood|depressed", kind="condition"),
    _g("anxiety", "gad|anxious|panic", kind="condition"),
    _g("obesity", "obese|overweight|high bmi", kind="condition"),
    _g("anemia", "anaemia|low hemoglobin|low blood count", kind="condition"),
    _g("osteoarthritis", "oa|degenerative joint disease|djd|arthritis", kind="condition"),
    _g("rheumatoid arthritis", "ra", kind="condition"),
    _g("osteoporosis", "bone loss|low bone density", kind="condition"),
    _g("hypothyroidism", "underactive thyroid|low thyroid", kind="condition"),
    _g("hyperthyroidism", "overactive thyroid|graves", kind="condition"),
    _g("gastroesophageal reflux", "gerd|reflux|heartburn|acid reflux", kind="condition"),
    _g("sinusitis", "sinus infection", kind="condition"),
    _g("pharyngitis", "sore throat|strep throat|strep", kind="condition"),
    _g("otitis media", "ear infection|aom", kind="condition"),
    _g("bronchitis", "chest cold", kind="condition"),
    _g("viral infection|upper respiratory", "uri|common cold|viral illness", kind="condition"),
    _g("covid-19|sars-cov-2", "covid|coronavirus|covid19", kind="condition"),
    _g("deep venous thrombosis|deep vein thrombosis", "dvt|blood clot", kind="condition"),
    _g("pulmonary embolism", "pe|lung clot", kind="condition"),
    _g("dementia|alzheimer", "cognitive decline|memory loss|alzheimers", kind="condition"),
    _g("epilepsy|seizure", "seizures|fits|convulsions", kind="condition"),
    _g("migraine", "headaches|migraines", kind="condition"),
    _g("sleep apnea", "osa|obstructive sleep apnea", kind="condition"),
    _g("fracture", "broken bone|fx", kind="condition"),
    _g("concussion|brain injury", "tbi|head injury", kind="condition"),
    _g("neoplasm|carcinoma|cancer", "ca|tumor|malignancy|cancer", kind="condition"),
    _g("tobacco|smokes tobacco|nicotine dependence", "smoker|smoking|cigarettes|tobacco use", kind="condition"),
    _g("alcohol", "etoh|drinking|alcohol use", kind="condition"),
    _g("pregnancy|pregnant", "pregnant|expecting|gravid", kind="condition"),
    _g("allergic rhinitis", "hay fever|seasonal allergies", kind="condition"),
    # ---- immunizations
    _g("influenza", "flu shot|flu vaccine|flu jab|influenza vaccine", kind="immunization"),
    _g("tetanus|tdap|td", "tetanus shot|tdap|td booster|tetanus booster", kind="immunization"),
    _g("pneumococcal", "pneumovax|prevnar|pneumonia vaccine|pneumonia shot|ppsv23|pcv13|pcv20", kind="immunization"),
    _g("zoster", "shingles vaccine|shingrix|zostavax|shingles shot", kind="immunization"),
    _g("hepatitis b|hep b", "hep b vaccine|hbv vaccine", kind="immunization"),
    _g("hepatitis a|hep a", "hep a vaccine", kind="immunization"),
    _g("human papillomavirus|hpv", "hpv vaccine|gardasil", kind="immunization"),
    _g("measles|mmr", "mmr|measles vaccine", kind="immunization"),
    _g("varicella", "chickenpox vaccine|varivax", kind="immunization"),
    _g("covid-19 vaccine|sars-cov-2 vaccine|mrna", "covid shot|covid vaccine|covid booster|pfizer|moderna", kind="immunization"),
    _g("meningococcal", "meningitis vaccine|menactra|menveo", kind="immunization"),
    _g("polio|ipv", "polio vaccine", kind="immunization"),
    _g("diphtheria|dtap", "dtap", kind="immunization"),
    _g("haemophilus|hib", "hib", kind="immunization"),
    _g("rotavirus", "rota", kind="immunization"),
    # ---- allergies
    _g("peanut", "peanuts|nut allergy", kind="allergy"),
    _g("penicillin", "pcn allergy|penicillins", kind="allergy"),
    _g("latex", "rubber", kind="allergy"),
    _g("shellfish", "seafood|shrimp", kind="allergy"),
    _g("house dust mite", "dust|dust mites", kind="allergy"),
    _g("pollen|grass|tree pollen", "hay fever|pollen", kind="allergy"),
    _g("animal dander", "cat|dog|pet dander", kind="allergy"),
    # ---- procedures
    _g("electrocardiogram|ecg", "ekg|ecg|12 lead", kind="procedure"),
    _g("colonoscopy", "scope|colon screening", kind="procedure"),
    _g("mammography|mammogram", "mammo|breast screening", kind="procedure"),
    _g("echocardiography|echocardiogram", "echo|tte|tee", kind="procedure"),
    _g("computed tomography", "ct|cat scan|ct scan", kind="procedure"),
    _g("magnetic resonance", "mri|mr", kind="procedure"),
    _g("radiography|x-ray", "xray|x ray|cxr|plain film", kind="procedure"),
    _g("hemodialysis|dialysis", "hd|dialysis", kind="procedure"),
    _g("intubation|mechanical ventilation", "intubated|vent|ventilator", kind="procedure"),
    _g("depression screening|phq", "phq-9|phq9|phq-2|mood screen", kind="procedure"),
)

_WORD_RE = re.compile(r"[a-z0-9]+(?:[+/&.-][a-z0-9]+)*\+?")


def normalize(text: str) -> str:
    return " ".join(text.lower().replace("_", " ").split())


def _contains(haystack: str, phrase: str) -> bool:
    """Whole-word (or whole-phrase) containment, case-insensitive; ``haystack`` already normalized."""
    if not phrase or phrase not in haystack:
        return False
    return _pattern(phrase)[1].search(haystack) is not None if not (len(phrase) <= 2 and phrase.isalpha()) else \
        re.search(r"(?<![a-z0-9])" + re.escape(phrase) + r"(?![a-z0-9])", haystack) is not None


_PATTERNS: dict[tuple[str, bool], tuple[bool, re.Pattern[str]]] = {}


def _pattern(phrase: str, titled: bool = False) -> tuple[bool, re.Pattern[str]]:
    pat = _PATTERNS.get((phrase, titled))
    if pat is None:
        if len(phrase) <= 2 and phrase.isalpha():
            # one- and two-letter aliases ("k", "t", "cr") only count when written in capitals; for labs
            # and vitals also capitalized, as chemical symbols and charting shorthand are ("Cr", "Na",
            # "Wt"), never in lower case ("mg", "na")
            forms = sorted({phrase.upper(), phrase.capitalize()} if titled else {phrase.upper()})
            pat = (True, re.compile(r"(?<![A-Za-z0-9])(?:" + "|".join(map(re.escape, forms)) + r")(?![A-Za-z0-9])"))
        else:
            pat = (False, re.compile(r"(?<![a-z0-9])" + re.escape(phrase) + r"(?![a-z0-9])"))
        _PATTERNS[(phrase, titled)] = pat
    return pat


def _find(text: str, norm: str, phrase: str, titled: bool = False) -> tuple[int, int] | None:
    raw, pat = _pattern(phrase, titled)
    if raw:
        return (-1, -1) if pat.search(text) else None
    if phrase not in norm:
        return None
    m = pat.search(norm)
    return m.span() if m else None


def groups_in_text(text: str, *, aliases: bool = True) -> list[tuple[Group, str]]:
    """Groups whose names (or aliases) occur in ``text``, with the phrase that matched, longest first.

    A phrase inside a longer matched phrase does not count on its own ("hemoglobin" inside
    "hemoglobin a1c").
    """
    norm = normalize(text)
    hits: list[tuple[int, Group, str, tuple[int, int]]] = []
    for group in GROUPS:
        best, span = "", (-1, -1)
        for phrase in group.names + (group.aliases if aliases else ()):
            found = _find(text, norm, phrase, group.kind in ("lab", "vital"))
            if found is not None and len(phrase) > len(best):
                best, span = phrase, found
        if best:
            hits.append((len(best), group, best, span))
    hits.sort(key=lambda h: -h[0])
    kept: list[tuple[Group, str, tuple[int, int]]] = []
    for _, g, p, span in hits:
        if span[0] >= 0 and any(s[0] <= span[0] and span[1] <= s[1] and len(kp) > len(p) for _, kp, s in kept):
            continue
        kept.append((g, p, span))
    return [(g, p) for g, p, _ in kept]


def groups_for_display(display: str, codes: list[str]) -> list[Group]:
    """Groups a record concept belongs to: by code, or by a group name inside its display."""
    return list(_groups_for_display(display, tuple(codes)))


_ALNUM = re.compile(r"[a-z0-9]+")


def _first_token_index() -> dict[str, set[int]]:
    """Group positions by the first alphanumeric run of each of their names and aliases.

    A phrase found as whole words in a display has each of its alphanumeric runs as a whole run of
    the display, so a group none of whose first runs occurs in the display cannot match it by name.
    """
    index: dict[str, set[int]] = {}
    for n, group in enumerate(GROUPS):
        for phrase in group.names + group.aliases:
            runs = _ALNUM.findall(phrase)
            index.setdefault(runs[0] if runs else "", set()).add(n)
    return index


_BY_FIRST_TOKEN = _first_token_index()
_BY_CODE: dict[str, set[int]] = {}
for _n, _group in enumerate(GROUPS):
    for _code in _group.codes:
        _BY_CODE.setdefault(_code, set()).add(_n)


@lru_cache(maxsize=65_536)
def _groups_for_display(display: str, codes: tuple[str, ...]) -> tuple[Group, ...]:
    norm = normalize(display)
    candidates = set(_BY_FIRST_TOKEN.get("", ()))
    for run in set(_ALNUM.findall(norm)):
        candidates |= _BY_FIRST_TOKEN.get(run, set())
    for code in codes:
        candidates |= _BY_CODE.get(code, set())
    out = []
    for group in (GROUPS[n] for n in sorted(candidates)):
        if any(e and _contains(norm, e) for e in group.exclude):
            continue
        if group.codes and any(c in group.codes for c in codes):
            out.append(group)
            continue
        if group.codes and group.kind in ("lab", "vital"):
            # lab/vital groups with codes also match on their record names (other code systems)
            if any(_contains(norm, n) for n in group.names if len(n) > 3):
                out.append(group)
            continue
        if any(_contains(norm, n) for n in group.names):
            out.append(group)
        elif any(len(a) >= 4 and _ALIAS_USES.get(a, 0) == 1 and _contains(norm, a) for a in group.aliases):
            out.append(group)  # a brand or specific name written in the record ("Lipitor 20 MG")
    return tuple(out)


_ALIAS_USES: dict[str, int] = {}
for _group in GROUPS:
    for _alias in _group.aliases:
        _ALIAS_USES[_alias] = _ALIAS_USES.get(_alias, 0) + 1


def words(text: str) -> list[str]:
    return _WORD_RE.findall(text.lower())
