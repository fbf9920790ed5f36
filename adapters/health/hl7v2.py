"""The HL7 v2 adapter: A&E ADT^A04 / A08 / A03 messages into care.attendance events."""

from __future__ import annotations

import re
from datetime import datetime
from typing import ClassVar

from adapters.base import AdapterContext, AdapterError, Problem, check_size
from adapters.health.canonical import (
    AttendanceFields,
    PatientFields,
    attendance_event,
    build_child,
)
from adapters.health.hl7_message import (
    Hl7Message,
    Hl7SyntaxError,
    Segment,
    parse_message,
    parse_ts,
    parse_ts_date,
)
from adapters.health.mapping import (
    HL7_SEX,
    flag_for_code,
    flag_for_text,
    is_ons_code,
    ordered_flags,
    setting_for_service,
)
from schemas.events import AttendanceSetting, Event, SafeguardingFlag

__all__ = ["SUPPORTED_TRIGGERS", "SUPPORTED_VERSIONS", "Hl7v2Adapter"]

#: HL7 v2 versions this adapter reads (MSH-12).
SUPPORTED_VERSIONS = frozenset({"2.3", "2.3.1", "2.4", "2.5", "2.5.1"})
#: ADT trigger events that describe an unscheduled-care attendance (MSH-9.2).
SUPPORTED_TRIGGERS = frozenset({"A04", "A08", "A03"})

#: HL7 table 0004, patient class.
_PATIENT_CLASSES = frozenset({"E", "I", "O", "P", "R", "B", "C", "N", "U"})
#: OBX-3 observation identifier that marks an OBX as a safeguarding flag.
FLAG_OBSERVATION = "SGFLAG"
#: NTE-4 comment type that marks an NTE as a safeguarding flag in words.
FLAG_COMMENT_TYPE = "SG"
__all__ += ["FLAG_COMMENT_TYPE", "FLAG_OBSERVATION"]

_CODE = re.compile(r"^[A-Z0-9_]{1,10}$")
_MAX_NOTE = 4000
#: Beyond this many problems the rest are counted, not listed: a garbled feed would
#: otherwise produce an error as long as the message.
_MAX_PROBLEMS = 50


class Hl7v2Adapter:
    """Translate one HL7 v2 ADT message (2.3 to 2.5.1) into one attendance event.

    Accepts MLLP framing, ``\\r``, ``\\n`` or ``\\r\\n`` between segments, the separators
    MSH declares and HL7 escape sequences. Flags come from ``ZXX`` segments, safeguarding
    ``OBX`` segments (OBX-3 ``SGFLAG``) and ``NTE`` comments of type ``SG``.
    """

    name: ClassVar[str] = "hl7v2"
    max_bytes: ClassVar[int] = 128 * 1024
    default_source: ClassVar[str] = "fhft-hospital"

    def parse(self, raw: bytes, context: AdapterContext) -> list[Event]:
        """Translate one HL7 v2 message.

        Raises:
            AdapterError: with every problem found, located by segment and field.
        """
        check_size(self.name, raw, self.max_bytes)
        try:
            message = parse_message(raw)
            problems: list[Problem] = []
            event = _translate(message, context, problems)
        except Hl7SyntaxError as exc:
            raise AdapterError(self.name, _capped(exc.problems)) from None
        except (ValueError, TypeError, IndexError, KeyError, RecursionError) as exc:
            raise AdapterError(
                self.name, [Problem("message", "not a readable HL7 v2 message")]
            ) from exc
        if problems or event is None:
            raise AdapterError(self.name, _capped(problems))
        return [event]


def _capped(problems: list[Problem]) -> list[Problem]:
    if len(problems) <= _MAX_PROBLEMS:
        return problems
    rest = len(problems) - _MAX_PROBLEMS
    return [*problems[:_MAX_PROBLEMS], Problem("message", f"{rest} more problems not listed")]


def _code(value: str, what: str) -> str:
    # Codes are echoed so the partner can see what was refused; anything else is not.
    return f"{what} {value}" if _CODE.match(value) else what


def _translate(
    message: Hl7Message, context: AdapterContext, problems: list[Problem]
) -> Event | None:
    msh = message.segments[0]
    trigger = _check_header(message, msh, problems)
    if problems or trigger is None:
        return None
    for name in ("PID", "PV1"):
        found = message.all(name)
        if not found:
            problems.append(Problem(name, f"the {name} segment is required"))
        for extra in found[1:]:
            problems.append(
                Problem(f"segment {extra.position} ({name})", f"only one {name} segment is allowed")
            )
    if problems:
        return None
    pid = message.all("PID")[0]
    pv1 = message.all("PV1")[0]
    child = build_child(_patient(pid, problems), context.now, problems)
    fields = _attendance(message, msh, pv1, trigger, problems)
    if child is None or fields is None or problems:
        return None
    return attendance_event(Hl7v2Adapter.name, child, fields, context, problems)


def _check_header(message: Hl7Message, msh: Segment, problems: list[Problem]) -> str | None:
    version = msh.value(12)
    if version not in SUPPORTED_VERSIONS:
        problems.append(
            Problem(
                "MSH-12",
                f"{_code(version, 'version')} is not supported (2.3 to 2.5.1)"
                if version
                else "the version id is required",
            )
        )
    kind, trigger = msh.value(9, 1).upper(), msh.value(9, 2).upper()
    if not trigger:
        evn = message.first("EVN")
        trigger = evn.value(1).upper() if evn else ""  # 2.3 senders may leave MSH-9.2 out
    if kind != "ADT" or trigger not in SUPPORTED_TRIGGERS:
        if _CODE.match(kind) and (not trigger or _CODE.match(trigger)):
            described = f"message type {kind}^{trigger}" if trigger else f"message type {kind}"
        else:
            described = "this message type"
        problems.append(
            Problem("MSH-9", f"{described} is not translated; send ADT^A04, ADT^A08 or ADT^A03")
        )
    if not msh.value(10):
        problems.append(Problem("MSH-10", "the message control id is required"))
    if problems:
        return None
    return trigger


def _patient(pid: Segment, problems: list[Problem]) -> PatientFields:
    fields = PatientFields(
        where={
            "patient": "PID",
            "nhs_number": "PID-3",
            "given_name": "PID-5.2",
            "family_name": "PID-5.1",
            "date_of_birth": "PID-7",
            "sex": "PID-8",
            "address_lines": "PID-11.1",
            "town": "PID-11.3",
            "postcode": "PID-11.5",
            "local_authority": "PID-11.9",
        }
    )
    fields.nhs_number, found_in = _nhs_number(pid)
    fields.where["nhs_number"] = f"PID-{found_in}"
    name = _preferred(pid, 5, type_component=7, wanted="L")
    if name is not None:
        fields.family_name = pid.text(_leaf(name, 1)) or None
        fields.given_name = pid.text(_leaf(name, 2)) or None
    dob = pid.value(7)
    if dob:
        fields.date_of_birth = parse_ts_date(dob)
        if fields.date_of_birth is None:
            problems.append(Problem("PID-7", "not a valid date (YYYYMMDD)"))
    sex = pid.value(8).upper()
    if sex:
        fields.sex = HL7_SEX.get(sex)
        if fields.sex is None:
            problems.append(Problem("PID-8", "not an administrative sex code (HL7 table 0001)"))
    address = _preferred(pid, 11, type_component=7, wanted="H")
    if address is not None:
        lines = (pid.text(_leaf(address, 1)), pid.text(_leaf(address, 2)))
        fields.address_lines = tuple(line for line in lines if line)
        fields.town = pid.text(_leaf(address, 3)) or None
        fields.postcode = pid.text(_leaf(address, 5)) or None
        area = pid.text(_leaf(address, 9))
        fields.local_authority = area if area and is_ons_code(area) else None
    return fields


def _leaf(repetition: list[list[str]], component: int, subcomponent: int = 1) -> str:
    try:
        return repetition[component - 1][subcomponent - 1]
    except IndexError:
        return ""


def _preferred(
    segment: Segment, field: int, *, type_component: int, wanted: str
) -> list[list[str]] | None:
    """The repetition whose type is ``wanted`` (legal name, home address), else the first."""
    reps = segment.repetitions(field)
    for rep in reps:
        if segment.text(_leaf(rep, type_component)).upper() == wanted:
            return rep
    return reps[0] if reps else None


def _nhs_number(pid: Segment) -> tuple[str | None, int]:
    """The NHS number and the field it was found in (3 when there is none)."""
    # PID-3 carries the NHS number as a CX with assigning authority NHS / type NH;
    # some 2.3 feeds still put it in PID-2.
    for field in (3, 2):
        for rep in pid.repetitions(field):
            authority = pid.text(_leaf(rep, 4)).upper()
            kind = pid.text(_leaf(rep, 5)).upper()
            if authority == "NHS" or kind == "NH":
                value = pid.text(_leaf(rep, 1))
                if value:
                    return value, field
    return None, 3


def _time(segment: Segment, field: int, problems: list[Problem]) -> datetime | None:
    text = segment.value(field)
    if not text:
        return None
    value = parse_ts(text)
    if value is None:
        problems.append(
            Problem(segment.location(field), "not a valid timestamp (YYYYMMDDHHMM[SS][+ZZZZ])")
        )
    return value


def _attendance(
    message: Hl7Message, msh: Segment, pv1: Segment, trigger: str, problems: list[Problem]
) -> AttendanceFields | None:
    found = len(problems)
    where = {
        "message": "message",
        "site": "PV1-3",
        "arrived_at": "PV1-44",
        "departed_at": "PV1-45",
        "attendance_ref": "PV1-19",
        "note": "NTE-3",
        "system": "MSH-3",
        "reference": "PV1-19",
    }
    patient_class = pv1.value(2).upper()
    if not patient_class:
        problems.append(Problem("PV1-2", "the patient class is required"))
    elif patient_class not in _PATIENT_CLASSES:
        problems.append(Problem("PV1-2", "not a patient class (HL7 table 0004)"))
    setting = _setting(pv1, patient_class)
    site = pv1.value(3, 4) or pv1.value(39) or msh.value(4)
    if not site:
        problems.append(Problem("PV1-3", "the site is required (PV1-3.4 facility, or MSH-4)"))
    arrived = _time(pv1, 44, problems)
    if arrived is None and not pv1.value(44):
        problems.append(Problem("PV1-44", "the arrival (admit) time is required"))
    departed = _time(pv1, 45, problems)
    if trigger == "A03" and departed is None and not pv1.value(45):
        problems.append(Problem("PV1-45", "a discharge (A03) needs the discharge time"))
    evn = message.first("EVN")
    recorded = _time(evn, 2, problems) if evn else None
    if recorded is None:
        recorded = _time(msh, 7, problems)
        where["recorded_at"] = "MSH-7"
    else:
        where["recorded_at"] = "EVN-2"
    occurred = _time(evn, 6, problems) if evn else None
    flags, note = _flags_and_note(message, problems)
    if len(problems) > found or arrived is None:
        return None
    visit = pv1.value(19)
    control_id = msh.value(10)
    return AttendanceFields(
        where=where,
        setting=setting,
        site=site,
        arrived_at=arrived,
        departed_at=departed,
        attendance_ref=visit or None,
        flags=flags,
        note=note,
        system=msh.value(3) or "hl7v2",
        reference=visit or control_id,
        occurred_at=occurred or (departed if trigger == "A03" else arrived),
        recorded_at=recorded,
        native_ids=(msh.value(4), control_id),
    )


def _setting(pv1: Segment, patient_class: str) -> AttendanceSetting:
    # The clinic (hospital service, else point of care) is more specific than the class:
    # a sexual health walk-in may be registered as an emergency.
    for text in (pv1.value(10), pv1.value(3, 1)):
        setting = setting_for_service(text) if text else None
        if setting is not None:
            return setting
    if patient_class == "E":
        return AttendanceSetting.EMERGENCY_DEPARTMENT
    return AttendanceSetting.OTHER


def _flags_and_note(
    message: Hl7Message, problems: list[Problem]
) -> tuple[tuple[SafeguardingFlag, ...], str | None]:
    flags: list[SafeguardingFlag] = []
    notes: list[str] = []
    for segment in message.segments:
        if segment.name == "ZXX":
            _zxx_flag(segment, flags, problems)
        elif segment.name == "OBX" and segment.value(3).upper() == FLAG_OBSERVATION:
            _obx_flags(segment, flags, problems)
        elif segment.name == "NTE":
            texts = [segment.text(_leaf(rep, 1)) for rep in segment.repetitions(3)]
            text = "\n".join(t for t in texts if t)
            if segment.value(4).upper() == FLAG_COMMENT_TYPE:
                flag = flag_for_text(text)
                if flag is None:
                    problems.append(
                        Problem(_where(segment, 3), "the comment names no known safeguarding flag")
                    )
                else:
                    flags.append(flag)
            elif text:
                notes.append(text)
    note = "\n".join(notes)[:_MAX_NOTE] or None
    return ordered_flags(flags), note


def _where(segment: Segment, field: int) -> str:
    return f"segment {segment.position} ({segment.name}) field {field}"


def _coded_flag(segment: Segment, rep: list[list[str]]) -> SafeguardingFlag | None:
    code, text, system = (segment.text(_leaf(rep, i)) for i in (1, 2, 3))
    flag = flag_for_code(code, system or None) if code else None
    return flag if flag is not None or not text else flag_for_text(text)


def _zxx_flag(segment: Segment, flags: list[SafeguardingFlag], problems: list[Problem]) -> None:
    status = segment.value(3).upper()
    if status not in ("", "A", "I"):
        problems.append(Problem(_where(segment, 3), "the status must be A (active) or I"))
        return
    reps = segment.repetitions(2)
    if not reps or not any(
        segment.text(_leaf(rep, 1)) or segment.text(_leaf(rep, 2)) for rep in reps
    ):
        problems.append(Problem(_where(segment, 2), "the flag is required"))
        return
    for rep in reps:
        flag = _coded_flag(segment, rep)
        if flag is None:
            problems.append(Problem(_where(segment, 2), "not a known safeguarding flag code"))
        elif status != "I":
            flags.append(flag)


def _obx_flags(segment: Segment, flags: list[SafeguardingFlag], problems: list[Problem]) -> None:
    if segment.value(11).upper() in ("D", "W", "X"):
        return  # deleted, wrong or cannot be obtained: not a flag in force
    value_type = segment.value(2).upper()
    reps = segment.repetitions(5)
    if not reps:
        problems.append(Problem(_where(segment, 5), "the flag is required"))
    for rep in reps:
        if value_type in ("CE", "CWE", "CNE", ""):
            flag = _coded_flag(segment, rep)
        else:
            flag = flag_for_text(segment.text(_leaf(rep, 1)))
        if flag is None:
            problems.append(Problem(_where(segment, 5), "not a known safeguarding flag"))
        else:
            flags.append(flag)
