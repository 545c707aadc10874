"""Decision records as FHIR R4 resources, following the CodeX Radiation Therapy structure.

Each record becomes a ``ServiceRequest`` with code SNOMED CT 1217123003 "Radiotherapy course
of treatment (regime/therapy)" and, per lesion, one ``codexrt-radiotherapy-dose-prescribed-to-
volume`` extension (volume: a ``BodyStructure`` naming the lesion's target; ``totalDose`` and
``fractionDose`` in cGy, UCUM; ``fractions``) of the chosen regimen. Intent ``plan`` (an MDT
decision, not yet an order); a record corrected by a later one is ``revoked`` and the correction
``replaces`` it. The bundle is checked by parsing it with ``fhir.resources`` (R4B models): the
FHIR datatypes and resources, not the CodeX profile rules (no IG validator runs here).

References:
https://hl7.org/fhir/us/codex-radiation-therapy/StructureDefinition-codexrt-radiotherapy-dose-prescribed-to-volume.html
https://hl7.org/fhir/us/codex-radiation-therapy/StructureDefinition-codexrt-radiotherapy-course-prescription.html
"""

from __future__ import annotations

import uuid

from .snapshot import RecordError

__all__ = ["DOSE_TO_VOLUME", "records_to_bundle", "validate_bundle"]

DOSE_TO_VOLUME = ("http://hl7.org/fhir/us/codex-radiation-therapy/StructureDefinition/"
                  "codexrt-radiotherapy-dose-prescribed-to-volume")
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
RECORD_SYSTEM = "urn:rtplan-assist:decision-record"
KEY_SYSTEM = "urn:rtplan-assist:patient-key"
ID_SYSTEM = "urn:rtplan-assist:patient-id"
_NAMESPACE = uuid.UUID("5f0c8e7e-8d4b-4c1e-9a59-2f6b1a1f0d16")


def _urn(*parts: str) -> str:
    return "urn:uuid:" + str(uuid.uuid5(_NAMESPACE, "/".join(parts)))


def _cgy(gy: float) -> dict:
    return {"value": round(gy * 100.0, 6), "unit": "cGy", "system": UCUM, "code": "cGy"}


def records_to_bundle(records: list[dict]) -> dict:
    """A FHIR ``Bundle`` (type ``collection``) of ``records`` (from
    :meth:`~rtplan_assist.records.store.RecordStore.records`): per patient a ``Patient``, per
    record a ``ServiceRequest`` and one ``BodyStructure`` per lesion target."""
    from ..regimens import parse_regimen

    entries: list[dict] = []
    patients: dict[str, str] = {}
    for rec in records:
        key = rec["patient_key"]
        if key not in patients:
            patients[key] = _urn("patient", key)
            identifier = [{"system": KEY_SYSTEM, "value": key}]
            if rec["patient_id"]:
                identifier.append({"system": ID_SYSTEM, "value": rec["patient_id"]})
            entries.append({"fullUrl": patients[key],
                            "resource": {"resourceType": "Patient", "identifier": identifier}})
        subject = {"reference": patients[key]}
        extensions = []
        for lesion in rec["lesions"]:
            volume = _urn("volume", rec["record_id"], lesion["lesion_id"])
            entries.append({"fullUrl": volume, "resource": {
                "resourceType": "BodyStructure",
                "identifier": [{"system": "urn:rtplan-assist:lesion",
                                "value": lesion["lesion_id"]}],
                "description": (lesion["label"] if lesion["label"].startswith(lesion["lesion_id"])
                                else f"{lesion['lesion_id']} {lesion['label']}")
                + f" ({lesion['site']})",
                "patient": subject,
            }})
            regimen = parse_regimen(lesion["chosen"])
            extensions.append({"url": DOSE_TO_VOLUME, "extension": [
                {"url": "volume", "valueReference": {"reference": volume,
                                                     "display": lesion["lesion_id"]}},
                {"url": "fractionDose", "valueQuantity": _cgy(regimen.dose_per_fraction_gy)},
                {"url": "totalDose", "valueQuantity": _cgy(regimen.total_dose_gy)},
                {"url": "fractions", "valuePositiveInt": int(regimen.fractions)},
            ]})
        notes = [f"Rationale: {rec['rationale']}"]
        if rec["dissent"]:
            notes.append(f"Dissent: {rec['dissent']}")
        notes.append(
            f"rtplan-assist verdict {rec['verdict']}, composite {rec['composite_verdict']}; "
            + "; ".join(f"{x['lesion_id']} {x['chosen']} ({x['verdict']}, planned "
                        f"{x['planned']}, recommended {x['recommended']})"
                        for x in rec["lesions"])
            + f". Record hash {rec['record_hash']}.")
        request = {
            "resourceType": "ServiceRequest",
            "identifier": [{"system": RECORD_SYSTEM, "value": rec["record_id"]}],
            "status": "revoked" if rec["superseded_by"] else "active",
            "intent": "plan",
            "code": {"coding": [{"system": SNOMED, "code": "1217123003",
                                 "display": "Radiotherapy course of treatment (regime/therapy)"}]},
            "subject": subject,
            "authoredOn": rec["created_at"],
            "requester": {"display": f"{rec['recorded_by']} ({rec['role']})"},
            "note": [{"text": text} for text in notes],
            "extension": extensions,
        }
        if rec["supersedes"]:
            request["replaces"] = [{"identifier": {"system": RECORD_SYSTEM,
                                                   "value": rec["supersedes"]}}]
        entries.append({"fullUrl": _urn("request", rec["record_id"]), "resource": request})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def validate_bundle(bundle: dict) -> None:
    """Parse ``bundle`` with ``fhir.resources`` (FHIR R4B models); :class:`RecordError` when it
    does not parse or the package is missing."""
    try:
        from fhir.resources.R4B.bundle import Bundle
    except ImportError as exc:
        raise RecordError("FHIR output needs the package fhir.resources: pip install "
                          "'rtplan-assist[fhir]'") from exc
    try:
        Bundle.model_validate(bundle)
    except Exception as exc:
        first = str(exc).strip().splitlines()
        raise RecordError(f"FHIR bundle does not validate: {' '.join(first[:3])}") from exc
