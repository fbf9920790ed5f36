"""Code tables shared by the HL7 v2 and FHIR adapters: flags, settings, sex and areas.

Both health formats name the same things with the same codes, so one table serves both:
a flag coded ``CPP`` in an HL7 ``ZXX`` segment and in a FHIR ``Flag.code`` means the same.
The tables are documented for partners in ``docs/partners/health.md``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from types import MappingProxyType

from schemas.events import AttendanceSetting, SafeguardingFlag
from schemas.person import Sex

__all__ = [
    "FLAG_CODES",
    "FLAG_SYSTEM",
    "FLAG_TEXT",
    "HL7_FLAG_SYSTEM",
    "HL7_SNOMED_SYSTEM",
    "SERVICE_SETTINGS",
    "SERVICE_SYSTEM",
    "SNOMED_FLAG_CODES",
    "SNOMED_SYSTEM",
    "flag_for_code",
    "flag_for_text",
    "is_ons_code",
    "ordered_flags",
    "setting_for_service",
]

#: The broker's own code system for safeguarding flags, as a FHIR ``Coding.system``.
FLAG_SYSTEM = "urn:mash-broker:safeguarding-flag"
#: The same code system's name in an HL7 v2 coded element (``CE.3`` / ``CWE.3``).
HL7_FLAG_SYSTEM = "MASHSG"
#: The code system of the hospital service codes below, as a FHIR ``Coding.system``.
SERVICE_SYSTEM = "urn:mash-broker:hospital-service"
#: SNOMED CT as a FHIR ``Coding.system`` and as an HL7 v2 coding system name.
SNOMED_SYSTEM = "http://snomed.info/sct"
HL7_SNOMED_SYSTEM = "SCT"

#: Local flag code → (canonical flag, display). Partners send these codes.
FLAG_CODES: MappingProxyType[str, tuple[SafeguardingFlag, str]] = MappingProxyType(
    {
        "CPP": (SafeguardingFlag.CHILD_PROTECTION_PLAN, "Subject of a child protection plan"),
        "LAC": (SafeguardingFlag.LOOKED_AFTER, "Looked after child"),
        "SGC": (SafeguardingFlag.SAFEGUARDING_CONCERN, "Safeguarding concern"),
        "CSE": (SafeguardingFlag.CSE_CONCERN, "Child sexual exploitation concern"),
        "U16P": (SafeguardingFlag.UNDER_16_PREGNANCY, "Pregnancy under 16"),
        "SH": (SafeguardingFlag.SELF_HARM, "Self-harm"),
        "SUB": (SafeguardingFlag.SUBSTANCE_MISUSE, "Substance misuse"),
        "ASLT": (SafeguardingFlag.ASSAULT, "Assault"),
    }
)

#: SNOMED CT concepts accepted as flags, with the displays they are published under.
#: Only concepts whose meaning is the canonical flag's are listed; the rest of a
#: partner's flags are ignored rather than guessed at.
SNOMED_FLAG_CODES: MappingProxyType[str, tuple[SafeguardingFlag, str]] = MappingProxyType(
    {
        "919461000000108": (SafeguardingFlag.CSE_CONCERN, "At risk of sexual exploitation"),
        "248062006": (SafeguardingFlag.SELF_HARM, "Self-injurious behaviour"),
        "66214007": (SafeguardingFlag.SUBSTANCE_MISUSE, "Substance abuse"),
    }
)

_SYNONYMS: dict[SafeguardingFlag, tuple[str, ...]] = {
    SafeguardingFlag.CHILD_PROTECTION_PLAN: (
        "child protection plan",
        "on a child protection plan",
        "on child protection plan",
        "subject of a child protection plan",
        "subject of child protection plan",
        "cp plan",
        "cpp",
    ),
    SafeguardingFlag.LOOKED_AFTER: (
        "looked after",
        "looked after child",
        "child looked after",
        "lac",
        "cla",
        "child in care",
    ),
    SafeguardingFlag.SAFEGUARDING_CONCERN: (
        "safeguarding concern",
        "safeguarding",
        "child safeguarding concern",
    ),
    SafeguardingFlag.CSE_CONCERN: (
        "cse",
        "cse concern",
        "cse risk",
        "child sexual exploitation",
        "child sexual exploitation concern",
        "at risk of sexual exploitation",
        "sexual exploitation",
    ),
    SafeguardingFlag.UNDER_16_PREGNANCY: (
        "under 16 pregnancy",
        "pregnancy under 16",
        "pregnant under 16",
    ),
    SafeguardingFlag.SELF_HARM: ("self harm", "self injurious behaviour", "self injury"),
    SafeguardingFlag.SUBSTANCE_MISUSE: (
        "substance misuse",
        "substance abuse",
        "drug misuse",
        "alcohol misuse",
    ),
    SafeguardingFlag.ASSAULT: ("assault", "assaulted", "victim of assault"),
}

_NON_WORD = re.compile(r"[^a-z0-9]+")


def _normalise(text: str) -> str:
    return _NON_WORD.sub(" ", text.lower()).strip()


#: Normalised phrase → flag, for the text fallback (whole phrase, not a search in prose,
#: so "no safeguarding concern" is not read as a concern).
FLAG_TEXT: MappingProxyType[str, SafeguardingFlag] = MappingProxyType(
    {
        _normalise(phrase): flag
        for flag, phrases in _SYNONYMS.items()
        for phrase in (*phrases, flag.value.replace("_", " "))
    }
    | {_normalise(display): flag for flag, display in FLAG_CODES.values()}
    | {_normalise(display): flag for flag, display in SNOMED_FLAG_CODES.values()}
)


def flag_for_code(code: str, system: str | None = None) -> SafeguardingFlag | None:
    """The canonical flag for a coded flag, or None when the code is not one of ours.

    ``system`` may be a FHIR system URI, an HL7 v2 coding system name, or absent (local
    codes are assumed). Codes are compared without regard to case for the local system.
    """
    code = code.strip()
    if system in (SNOMED_SYSTEM, HL7_SNOMED_SYSTEM, "SNM", "SNOMED CT", "SNOMEDCT"):
        entry = SNOMED_FLAG_CODES.get(code)
    elif not system or system in (FLAG_SYSTEM, HL7_FLAG_SYSTEM, "L", "99LOCAL"):
        entry = FLAG_CODES.get(code.upper()) or SNOMED_FLAG_CODES.get(code)
    else:
        return None
    return entry[0] if entry else None


def flag_for_text(text: str) -> SafeguardingFlag | None:
    """The canonical flag a display or free-text label names as a whole phrase, or None."""
    return FLAG_TEXT.get(_normalise(text))


def ordered_flags(flags: Iterable[SafeguardingFlag]) -> tuple[SafeguardingFlag, ...]:
    """Flags without duplicates in the canonical enumeration's order, so every source
    format gives the same tuple for the same flags."""
    present = set(flags)
    return tuple(flag for flag in SafeguardingFlag if flag in present)


#: Hospital service / clinic codes (HL7 ``PV1-10`` or ``PV1-3.1``, FHIR
#: ``Encounter.serviceType``) → setting. Mnemonics and NHS treatment function codes.
SERVICE_SETTINGS: MappingProxyType[str, AttendanceSetting] = MappingProxyType(
    {
        "AE": AttendanceSetting.EMERGENCY_DEPARTMENT,
        "ED": AttendanceSetting.EMERGENCY_DEPARTMENT,
        "EMER": AttendanceSetting.EMERGENCY_DEPARTMENT,
        "180": AttendanceSetting.EMERGENCY_DEPARTMENT,
        "GUM": AttendanceSetting.SEXUAL_HEALTH,
        "SHS": AttendanceSetting.SEXUAL_HEALTH,
        "SHC": AttendanceSetting.SEXUAL_HEALTH,
        "360": AttendanceSetting.SEXUAL_HEALTH,
        "UTC": AttendanceSetting.URGENT_TREATMENT_CENTRE,
        "UCC": AttendanceSetting.URGENT_TREATMENT_CENTRE,
        "WIC": AttendanceSetting.URGENT_TREATMENT_CENTRE,
        "MAT": AttendanceSetting.MATERNITY,
        "OBS": AttendanceSetting.MATERNITY,
        "501": AttendanceSetting.MATERNITY,
        "560": AttendanceSetting.MATERNITY,
    }
)


def setting_for_service(code: str) -> AttendanceSetting | None:
    """The setting a hospital service or clinic code names, or None when unknown."""
    return SERVICE_SETTINGS.get(code.strip().upper())


#: HL7 v2 administrative sex (table 0001) → canonical sex.
HL7_SEX: MappingProxyType[str, Sex] = MappingProxyType(
    {
        "M": Sex.MALE,
        "F": Sex.FEMALE,
        "O": Sex.OTHER,
        "A": Sex.OTHER,
        "N": Sex.UNKNOWN,
        "U": Sex.UNKNOWN,
    }
)
#: FHIR administrative gender → canonical sex.
FHIR_SEX: MappingProxyType[str, Sex] = MappingProxyType(
    {"male": Sex.MALE, "female": Sex.FEMALE, "other": Sex.OTHER, "unknown": Sex.UNKNOWN}
)
__all__ += ["FHIR_SEX", "HL7_SEX"]

_ONS = re.compile(r"^(E0[6-9]|E10|W06|S12|N09)\d{6}$")


def is_ons_code(value: str) -> bool:
    """True when ``value`` has the shape of an ONS local authority code (``E06000040``)."""
    return bool(_ONS.match(value))
