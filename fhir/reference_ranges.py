"""Default adult reference ranges for common LOINC codes, used only when a result carries none.

Many exports (Synthea among them) omit ``Observation.referenceRange``; "most recent abnormal
creatinine" still deserves an answer.  A range from this table is marked ``source="default"`` on
the fact, and the timeline and evidence say so.  Values are conventional adult ranges in the units
Synthea and most US labs report; a result in another unit gets no default range.
"""
from __future__ import annotations

LOINC = "http://loinc.org"

#: LOINC code -> (low, high, unit)
DEFAULT_RANGES: dict[str, tuple[float | None, float | None, str]] = {
    "2339-0": (70, 99, "mg/dL"),  # Glucose
    "2345-7": (70, 99, "mg/dL"),  # Glucose serum/plasma
    "4548-4": (4.0, 5.6, "%"),  # Hemoglobin A1c
    "6299-2": (7, 20, "mg/dL"),  # Urea nitrogen (BUN)
    "3094-0": (7, 20, "mg/dL"),  # BUN serum/plasma
    "38483-4": (0.6, 1.3, "mg/dL"),  # Creatinine
    "2160-0": (0.6, 1.3, "mg/dL"),  # Creatinine serum/plasma
    "49765-1": (8.5, 10.5, "mg/dL"),  # Calcium
    "17861-6": (8.5, 10.5, "mg/dL"),  # Calcium serum/plasma
    "2947-0": (135, 145, "mmol/L"),  # Sodium
    "2951-2": (135, 145, "mmol/L"),  # Sodium serum/plasma
    "6298-4": (3.5, 5.1, "mmol/L"),  # Potassium
    "2823-3": (3.5, 5.1, "mmol/L"),  # Potassium serum/plasma
    "2069-3": (98, 107, "mmol/L"),  # Chloride
    "2075-0": (98, 107, "mmol/L"),  # Chloride serum/plasma
    "20565-8": (22, 29, "mmol/L"),  # Carbon dioxide (bicarbonate)
    "2028-9": (22, 29, "mmol/L"),  # CO2 serum/plasma
    "2093-3": (None, 200, "mg/dL"),  # Total cholesterol
    "2571-8": (None, 150, "mg/dL"),  # Triglycerides
    "18262-6": (None, 100, "mg/dL"),  # LDL (direct)
    "13457-7": (None, 100, "mg/dL"),  # LDL (calculated)
    "2085-9": (40, None, "mg/dL"),  # HDL
    "6690-2": (4.5, 11.0, "10*3/uL"),  # WBC
    "789-8": (4.2, 5.9, "10*6/uL"),  # RBC
    "718-7": (12.0, 17.5, "g/dL"),  # Hemoglobin
    "4544-3": (36, 52, "%"),  # Hematocrit
    "787-2": (80, 100, "fL"),  # MCV
    "785-6": (27, 33, "pg"),  # MCH
    "786-4": (32, 36, "g/dL"),  # MCHC
    "777-3": (150, 450, "10*3/uL"),  # Platelets
    "1742-6": (7, 56, "U/L"),  # ALT
    "1920-8": (10, 40, "U/L"),  # AST
    "6768-6": (44, 147, "U/L"),  # Alkaline phosphatase
    "1975-2": (0.1, 1.2, "mg/dL"),  # Total bilirubin
    "2885-2": (6.0, 8.3, "g/dL"),  # Total protein
    "1751-7": (3.5, 5.0, "g/dL"),  # Albumin
    "33914-3": (60, None, "mL/min/{1.73_m2}"),  # eGFR (MDRD)
    "62238-1": (60, None, "mL/min/{1.73_m2}"),  # eGFR (CKD-EPI)
    "14959-1": (None, 30, "mg/g"),  # Microalbumin/creatinine ratio
    "8480-6": (90, 130, "mm[Hg]"),  # Systolic BP
    "8462-4": (60, 80, "mm[Hg]"),  # Diastolic BP
    "8867-4": (60, 100, "/min"),  # Heart rate
    "9279-1": (12, 20, "/min"),  # Respiratory rate
    "2708-6": (95, 100, "%"),  # Oxygen saturation
    "59408-5": (95, 100, "%"),  # SpO2 by pulse oximetry
    "8310-5": (36.1, 37.8, "Cel"),  # Body temperature
    "8331-1": (36.1, 37.8, "Cel"),  # Oral temperature
    "39156-5": (18.5, 25, "kg/m2"),  # BMI
}


def default_range(system: str | None, code: str | None, unit: str | None) -> tuple[float | None, float | None, str] | None:
    """The default range for a LOINC code when the result's unit matches the table's."""
    if not code or (system and system != LOINC):
        return None
    found = DEFAULT_RANGES.get(code)
    if found is None:
        return None
    if unit is not None and unit.replace(" ", "").lower() != found[2].lower():
        return None
    return found
