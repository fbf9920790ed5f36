"""The HL7 v2 adapter: the shared contract, framing, delimiters, times, flags, errors, ACKs."""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import replace
from datetime import UTC, date, datetime

import hl7
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import adapters.health
from adapters import get_adapter
from adapters.base import AdapterContext, AdapterError, InputTooLarge
from adapters.health import Hl7v2Adapter, ack_for, frame_mllp
from adapters.health import hl7_message as reader
from adapters.health.ack import ack_code
from adapters.health.hl7_message import Separators, escape, parse_ts, unescape
from broker.samples.health import hl7_message, render
from broker.samples.scenario import make_scenario
from schemas.common import make_test_nhs_number
from schemas.events import AttendanceSetting, LawfulBasis, SafeguardingFlag
from schemas.person import Sex
from tests.adapters.contract import GOLDEN_NOW, AdapterContract

NHS = make_test_nhs_number(4242)
CONTEXT = AdapterContext(source_agency="fhft-hospital", now=GOLDEN_NOW)


def _sample(seed: int = 1) -> bytes:
    return render(make_scenario(seed))["health/hl7v2/attendance-01-V010001-a03.hl7"]


class TestHl7v2Contract(AdapterContract):
    adapter_name = "hl7v2"
    sample_input = _sample()


def message(**fields: str) -> bytes:
    """An ADT^A04 with fields replaced: ``PV1_44="..."`` sets PV1-44, ``drop="ZXX"`` drops."""
    segments = {
        "MSH": ["MSH", "^~\\&", "EDPAS", "RDU", "MASH", "WAM", "20261116090500", "",
                "ADT^A04^ADT_A01", "MSG0001", "P", "2.4"],
        "EVN": ["EVN", "A04", "20261116090500"],
        "PID": ["PID", "1", "", f"{NHS}^^^NHS^NH~H778812^^^RDU^MR", "",
                "Ashcombe^Tilly^^^^^L", "", "20120304", "F", "", "",
                "7 Heronsgate^^Maidenhead^^SL6 4ZZ^GBR^H^^E06000040"],
        "PV1": ["PV1", "1", "E", "AE^^^RDU01"] + [""] * 15 + ["V990001"] + [""] * 24
        + ["20261116090000"],
    }  # fmt: skip
    drop = set(fields.pop("drop", "").split(","))
    extra = fields.pop("extra", "")
    for key, value in fields.items():
        name, index = key.split("_")
        seg = segments[name]
        position = int(index) if name != "MSH" else int(index) - 1
        while len(seg) <= position:
            seg.append("")
        seg[position] = value
    lines = ["|".join(seg) for name, seg in segments.items() if name not in drop]
    if extra:
        lines.extend(extra.split("\n"))
    return ("\r".join(lines) + "\r").encode()


def translate(raw: bytes, context: AdapterContext = CONTEXT):
    events = Hl7v2Adapter().parse(raw, context)
    assert len(events) == 1
    return events[0]


def problems(raw: bytes, context: AdapterContext = CONTEXT) -> dict[str, str]:
    with pytest.raises(AdapterError) as caught:
        Hl7v2Adapter().parse(raw, context)
    return {p.location: p.reason for p in caught.value.problems}


# -- a well-formed message --------------------------------------------------------------


def test_a04_becomes_an_attendance_with_the_child() -> None:
    event = translate(message())
    child = event.subject
    assert child is not None
    assert child.nhs_number == NHS
    assert (child.given_name, child.family_name) == ("Tilly", "Ashcombe")
    assert child.date_of_birth == date(2012, 3, 4)
    assert child.sex is Sex.FEMALE
    assert child.home_address is not None
    assert child.home_address.lines == ("7 Heronsgate",)
    assert child.home_address.postcode == "SL6 4ZZ"
    assert child.home_address.local_authority == "E06000040"
    body = event.body
    assert body.type == "care.attendance"
    assert body.setting is AttendanceSetting.EMERGENCY_DEPARTMENT
    assert body.site == "RDU01"
    assert body.attendance_ref == "V990001"
    assert body.arrived_at == datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
    assert body.departed_at is None
    assert body.flags == ()
    meta = event.metadata
    assert meta.source.agency == "fhft-hospital"
    assert meta.source.system == "EDPAS"
    assert meta.source.reference == "V990001"
    assert meta.recorded_at == datetime(2026, 11, 16, 9, 5, tzinfo=UTC)
    assert meta.occurred_at == body.arrived_at
    assert meta.lawful_basis is LawfulBasis.CA_2004_S11
    assert meta.correlation_id is None


def test_a03_needs_and_uses_the_discharge_time() -> None:
    a03 = {"MSH_9": "ADT^A03^ADT_A03", "EVN_1": "A03"}
    assert "PV1-45" in problems(message(**a03))
    event = translate(message(**a03, PV1_45="20261116113000"))
    assert event.body.departed_at == datetime(2026, 11, 16, 11, 30, tzinfo=UTC)
    assert event.metadata.occurred_at == event.body.departed_at


def test_a08_update_is_translated() -> None:
    event = translate(message(MSH_9="ADT^A08^ADT_A01", EVN_1="A08"))
    assert event.body.type == "care.attendance"


def test_version_2_3_trigger_from_evn_when_msh9_has_none() -> None:
    event = translate(message(MSH_9="ADT", MSH_12="2.3"))
    assert event.body.site == "RDU01"


@pytest.mark.parametrize("version", ["2.3", "2.3.1", "2.4", "2.5", "2.5.1"])
def test_supported_versions(version: str) -> None:
    assert translate(message(MSH_12=version)).body.site == "RDU01"


def test_context_decides_agency_and_lawful_basis() -> None:
    context = AdapterContext(
        source_agency="other-trust", now=GOLDEN_NOW, lawful_basis=LawfulBasis.CA_1989_S47
    )
    event = translate(message(), context)
    assert event.metadata.source.agency == "other-trust"
    assert event.metadata.lawful_basis is LawfulBasis.CA_1989_S47


# -- framing, separators, delimiters, escapes ------------------------------------------


def test_mllp_framing_and_line_endings_give_the_same_event() -> None:
    plain = message()
    expected = translate(plain)
    variants = [
        frame_mllp(plain),
        b"\x0b" + plain + b"\x1c",
        plain.replace(b"\r", b"\n"),
        plain.replace(b"\r", b"\r\n"),
        frame_mllp(plain.replace(b"\r", b"\r\n")),
        b"\xef\xbb\xbf" + plain,
    ]
    for raw in variants:
        assert translate(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\x0bMSH|^~\\&|A", "without an end block"),
        (b"MSH|^~\\&|A\x1c\r", "without a start block"),
        (frame_mllp(b"MSH|^~\\&|A") + frame_mllp(b"MSH|^~\\&|B"), "one message per frame"),
    ],
)
def test_broken_framing_is_refused(raw: bytes, reason: str) -> None:
    assert reason in problems(raw)["message"]


def test_non_default_delimiters_are_honoured() -> None:
    plain = message()
    table = bytes.maketrans(b"|^~\\&", b"#$%!@")
    custom = plain.translate(table)
    assert custom.startswith(b"MSH#$%!@#")
    assert translate(custom) == translate(plain)


def test_escape_sequences_are_resolved() -> None:
    note = r"Left with aunt\T\uncle \F\ ward 3\S\bay 2\R\x\E\y\X41\\.br\next"
    event = translate(
        message(PID_11="Flat 2\\T\\3 Mill Lane^^Maidenhead^^SL6 4ZZ", extra=f"NTE|1||{note}")
    )
    assert event.subject is not None
    assert event.subject.home_address is not None
    assert event.subject.home_address.lines == ("Flat 2&3 Mill Lane",)
    assert event.body.note == "Left with aunt&uncle | ward 3^bay 2~x\\yA\nnext"


def test_escapes_in_custom_delimiters() -> None:
    custom = message(extra="NTE|1||a\\F\\b").translate(bytes.maketrans(b"|^~\\&", b"#$%!@"))
    assert translate(custom).body.note == "a#b"


@given(st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40))
def test_escape_then_unescape_is_identity(text: str) -> None:
    for seps in (Separators(), Separators("#", "$", "%", "!", "@")):
        assert unescape(escape(text, seps), seps) == text


def test_latin1_when_msh18_says_so() -> None:
    raw = message(PID_5="Zoë^Ffion", MSH_18="8859/1").decode().encode("latin-1")
    assert translate(raw).subject.family_name == "Zoë"
    assert (
        "not valid UTF-8"
        in problems(message(PID_5="Zoë^Ffion").decode().encode("latin-1"))["message"]
    )


def test_control_characters_are_stripped() -> None:
    event = translate(message(PID_5="Ash\x07combe^Ti\x00lly"))
    assert (event.subject.family_name, event.subject.given_name) == ("Ashcombe", "Tilly")


# -- times --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("local", "utc"),
    [
        # Spring forward, Sunday 29 March 2026: 01:00 GMT becomes 02:00 BST.
        ("20260329003000", datetime(2026, 3, 29, 0, 30, tzinfo=UTC)),
        ("20260329023000", datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),
        ("20260329030000", datetime(2026, 3, 29, 2, 0, tzinfo=UTC)),
        # Fall back, Sunday 25 October 2026: 02:00 BST becomes 01:00 GMT; the repeated
        # hour is read as its first (BST) occurrence.
        ("20261025003000", datetime(2026, 10, 24, 23, 30, tzinfo=UTC)),
        ("20261025013000", datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
        ("20261025023000", datetime(2026, 10, 25, 2, 30, tzinfo=UTC)),
        # An explicit offset is honoured, including the second 01:30 of the autumn day.
        ("20261025013000+0000", datetime(2026, 10, 25, 1, 30, tzinfo=UTC)),
        ("20260710120000+0100", datetime(2026, 7, 10, 11, 0, tzinfo=UTC)),
        ("20260710120000-0500", datetime(2026, 7, 10, 17, 0, tzinfo=UTC)),
        ("202607101200", datetime(2026, 7, 10, 11, 0, tzinfo=UTC)),
        ("2026071012", datetime(2026, 7, 10, 11, 0, tzinfo=UTC)),
        ("20260110120000.25", datetime(2026, 1, 10, 12, 0, 0, 250000, tzinfo=UTC)),
    ],
)
def test_london_wall_times_across_the_clock_changes(local: str, utc: datetime) -> None:
    assert parse_ts(local) == utc
    assert translate(message(PV1_44=local)).body.arrived_at == utc


@pytest.mark.parametrize("bad", ["20261316090000", "2026111609", "x", "20261116", "20261116250000",
                                 "20261116090000+2500"])  # fmt: skip
def test_bad_timestamps_are_located(bad: str) -> None:
    if bad == "2026111609":
        assert translate(message(PV1_44=bad)).body.arrived_at.hour == 9
        return
    assert "PV1-44" in problems(message(PV1_44=bad))


def test_recorded_at_falls_back_to_msh7_then_now() -> None:
    assert translate(message(drop="EVN")).metadata.recorded_at == datetime(
        2026, 11, 16, 9, 5, tzinfo=UTC
    )
    assert translate(message(drop="EVN", MSH_7="")).metadata.recorded_at == GOLDEN_NOW
    assert translate(message(EVN_6="20261116085500")).metadata.occurred_at == datetime(
        2026, 11, 16, 8, 55, tzinfo=UTC
    )


# -- settings and flags -------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "setting"),
    [
        ({}, AttendanceSetting.EMERGENCY_DEPARTMENT),
        ({"PV1_2": "O", "PV1_10": "GUM"}, AttendanceSetting.SEXUAL_HEALTH),
        ({"PV1_2": "E", "PV1_10": "360"}, AttendanceSetting.SEXUAL_HEALTH),
        ({"PV1_2": "O", "PV1_3": "SHC^^^RDU50"}, AttendanceSetting.SEXUAL_HEALTH),
        ({"PV1_2": "O", "PV1_3": "UTC^^^RDU07"}, AttendanceSetting.URGENT_TREATMENT_CENTRE),
        ({"PV1_2": "I", "PV1_10": "MAT"}, AttendanceSetting.MATERNITY),
        ({"PV1_2": "I", "PV1_3": "W12^^^RDU01"}, AttendanceSetting.OTHER),
    ],
)
def test_setting_from_service_then_class(
    fields: dict[str, str], setting: AttendanceSetting
) -> None:
    assert translate(message(**fields)).body.setting is setting


def test_site_falls_back_to_sending_facility() -> None:
    assert translate(message(PV1_3="AE")).body.site == "RDU"
    assert "PV1-3" in problems(message(PV1_3="AE", MSH_4=""))


def test_flags_from_zxx_obx_and_nte() -> None:
    extra = "\n".join(
        [
            "ZXX|1|CPP^Subject of a child protection plan^MASHSG|A",
            "ZXX|2|^Looked after child",
            "ZXX|3|SH^Self-harm^MASHSG|I",
            "OBX|1|CE|SGFLAG^Safeguarding flag^MASHSG||CSE^CSE concern^MASHSG||||||F",
            "OBX|2|CE|SGFLAG^Safeguarding flag^MASHSG||248062006^Self-injurious^SCT||||||W",
            "OBX|3|CWE|SGFLAG||66214007^Substance abuse^SCT~ASLT^Assault^MASHSG||||||F",
            "OBX|4|NM|8867-4^Heart rate^LN||88|/min|||||F",
            "OBX|5|ST|SGFLAG||pregnancy under 16||||||F",
            "NTE|1||Safeguarding concern|SG^Safeguarding",
            "NTE|2||Brought in by ambulance",
            "NTE|3||Seen by paediatric liaison",
        ]
    )
    body = translate(message(extra=extra)).body
    assert body.flags == (
        SafeguardingFlag.CHILD_PROTECTION_PLAN,
        SafeguardingFlag.LOOKED_AFTER,
        SafeguardingFlag.SAFEGUARDING_CONCERN,
        SafeguardingFlag.CSE_CONCERN,
        SafeguardingFlag.UNDER_16_PREGNANCY,
        SafeguardingFlag.SUBSTANCE_MISUSE,
        SafeguardingFlag.ASSAULT,
    )
    assert body.note == "Brought in by ambulance\nSeen by paediatric liaison"


def test_unknown_flags_are_located() -> None:
    extra = "\n".join(
        [
            "ZXX|1|XYZ^Mystery^MASHSG",
            "OBX|1|CE|SGFLAG||QQQ^Unknown^MASHSG||||||F",
            "NTE|1||no concerns|SG",
            "ZXX|4||Q",
            "ZXX|5",
        ]
    )
    found = problems(message(extra=extra))
    assert set(found) == {
        "segment 5 (ZXX) field 2",
        "segment 6 (OBX) field 5",
        "segment 7 (NTE) field 3",
        "segment 8 (ZXX) field 3",
        "segment 9 (ZXX) field 2",
    }


# -- identifiers ----------------------------------------------------------------------


def test_nhs_number_found_in_any_repetition_or_pid2() -> None:
    later = message(PID_3=f"H1^^^RDU^MR~{NHS}^^^NHS^NH")
    assert translate(later).subject.nhs_number == NHS
    by_type = message(PID_3=f"{NHS}^^^^NH")
    assert translate(by_type).subject.nhs_number == NHS
    old_style = message(PID_2=f"{NHS}^^^NHS", PID_3="H1^^^RDU^MR")
    assert translate(old_style).subject.nhs_number == NHS


def test_child_without_nhs_number_needs_name_and_birth_date() -> None:
    child = translate(message(PID_3="H1^^^RDU^MR")).subject
    assert child is not None
    assert child.nhs_number is None
    assert "PID" in problems(message(PID_3="H1^^^RDU^MR", PID_7=""))


def test_legal_name_and_home_address_are_preferred() -> None:
    event = translate(
        message(
            PID_5="Nick^Tee^^^^^N~Ashcombe^Tilly^^^^^L",
            PID_11="School Lane^^Slough^^SL1 1ZZ^^C~7 Heronsgate^^Maidenhead^^SL6 4ZZ^^H",
        )
    )
    child = event.subject
    assert child is not None
    assert child.home_address is not None
    assert (child.family_name, child.home_address.town) == ("Ashcombe", "Maidenhead")


def test_event_ids_are_deterministic_and_distinct() -> None:
    first = translate(message())
    assert translate(frame_mllp(message())).metadata.event_id == first.metadata.event_id
    other = translate(message(MSH_10="MSG0002"))
    assert other.metadata.event_id != first.metadata.event_id
    elsewhere = translate(message(), AdapterContext(source_agency="rbh-hospital", now=GOLDEN_NOW))
    assert elsewhere.metadata.event_id != first.metadata.event_id


# -- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"MSH_9": "ADT^A01^ADT_A01"}, "MSH-9"),
        ({"MSH_9": "ORU^R01"}, "MSH-9"),
        ({"MSH_9": "ADT^A11"}, "MSH-9"),
        ({"MSH_12": "2.6"}, "MSH-12"),
        ({"MSH_12": ""}, "MSH-12"),
        ({"MSH_10": ""}, "MSH-10"),
        ({"drop": "PID"}, "PID"),
        ({"drop": "PV1"}, "PV1"),
        ({"PID_3": "9990000000^^^NHS^NH"}, "PID-3"),
        ({"PID_2": "9990000000^^^NHS", "PID_3": "H1^^^RDU^MR"}, "PID-2"),
        ({"PID_7": "20121340"}, "PID-7"),
        ({"PID_7": "20270101"}, "PID-7"),
        ({"PID_7": "19800101"}, "PID-7"),
        ({"PID_8": "Q"}, "PID-8"),
        ({"PID_11": "1 Road^^Town^^NOT A POSTCODE"}, "PID-11.5"),
        ({"PV1_2": ""}, "PV1-2"),
        ({"PV1_2": "Z"}, "PV1-2"),
        ({"PV1_44": ""}, "PV1-44"),
        ({"PV1_44": "20261201090000"}, "PV1-44"),
        ({"PV1_45": "20261116080000"}, "PV1-45"),
        ({"EVN_2": "2026111"}, "EVN-2"),
    ],
)
def test_errors_are_located(fields: dict[str, str], where: str) -> None:
    assert where in problems(message(**fields))


def test_every_problem_is_reported_at_once() -> None:
    found = problems(message(PID_3="9990000000^^^NHS^NH", PID_7="2012", PV1_44="", PV1_2="Z"))
    assert {"PID-3", "PID-7", "PV1-44", "PV1-2"} <= set(found)


def test_unsupported_trigger_names_itself_but_not_garbage() -> None:
    assert "ADT^A01" in problems(message(MSH_9="ADT^A01"))["MSH-9"]
    assert "this message type" in problems(message(MSH_9="Ashcombe Tilly^x y"))["MSH-9"]


def test_errors_never_carry_personal_data() -> None:
    raw = message(PID_3="9990000000^^^NHS^NH", PID_7="20270101", PID_11="1 Road^^T^^BAD")
    with pytest.raises(AdapterError) as caught:
        Hl7v2Adapter().parse(raw, CONTEXT)
    text = str(caught.value)
    for personal in ("9990000000", "Ashcombe", "Tilly", "2027", "1 Road", "BAD"):
        assert personal not in text


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"PID|1",
        b"MSH|^~",
        b"MSH|^~\\&",
        b"MSH|^^^^|x",
        b"MSHA^~\\&|x",
        b"MSH|^~\\&|A|B|C|D|2026||ADT^A04|1|P|2.4\rPID|1\rMSH|^~\\&|",
        b"MSH|^~\\&|A\rBHS|^~\\&",
        b"MSH|^~\\&|A\rpid|1",
    ],
)
def test_unreadable_messages_are_typed_errors(raw: bytes) -> None:
    with pytest.raises(AdapterError) as caught:
        Hl7v2Adapter().parse(raw, CONTEXT)
    assert all(p.location and p.reason for p in caught.value.problems)


def test_problem_lists_are_capped() -> None:
    extra = "\n".join(f"ZXX|{i}|BAD{i}" for i in range(80))
    with pytest.raises(AdapterError) as caught:
        Hl7v2Adapter().parse(message(extra=extra), CONTEXT)
    assert len(caught.value.problems) == 51
    assert "30 more" in caught.value.problems[-1].reason


_FIELDS = ["PID_5", "PID_7", "PID_8", "PID_11", "PV1_2", "PV1_3", "PV1_10", "PV1_19", "PV1_44",
           "PV1_45", "EVN_2", "MSH_9", "MSH_12"]  # fmt: skip


@settings(max_examples=150, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.dictionaries(
        st.sampled_from(_FIELDS),
        st.one_of(
            st.text(max_size=30),
            st.from_regex(r"\A[0-9]{8,14}([+-][0-9]{4})?\Z"),
            st.sampled_from(["^^^", "~", "\\", "\\X\\", "\\F", '""', "E", "GUM", "A03"]),
        ),
        max_size=4,
    )
)
def test_random_field_values_give_events_or_typed_errors(values: dict[str, str]) -> None:
    raw = message(**values)
    try:
        events = Hl7v2Adapter().parse(raw, CONTEXT)
    except AdapterError as exc:
        assert exc.problems
        assert all(p.location.strip() and p.reason.strip() for p in exc.problems)
    else:
        assert len(events) == 1


# -- samples --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_rendered_sample_translates(seed: int) -> None:
    scenario = make_scenario(seed)
    context = AdapterContext(source_agency="fhft-hospital", now=scenario.now)
    adapter = get_adapter("hl7v2")
    rendered = {k: v for k, v in render(scenario).items() if k.endswith(".hl7")}
    assert len(rendered) == 2 * len(scenario.attendances)
    for raw in rendered.values():
        assert len(adapter.parse(raw, context)) == 1


def test_rendered_times_survive_the_autumn_overlap() -> None:
    # An attendance in the repeated hour is written with its offset, so it round-trips.
    scenario = make_scenario(1)
    arrived = datetime(2026, 10, 25, 1, 20, tzinfo=UTC)  # 01:20 GMT, the second 01:20
    attendance = replace(
        scenario.attendances[0],
        arrived_at=arrived,
        departed_at=datetime(2026, 10, 25, 1, 50, tzinfo=UTC),
    )
    raw = hl7_message(scenario.child(attendance.child), attendance, "A03")
    assert b"20261025012000+0000" in raw
    assert translate(raw).body.arrived_at == arrived


# -- acknowledgements ---------------------------------------------------------------


def _ack(raw: bytes, error: AdapterError | None) -> hl7.Message:
    reply = ack_for(raw, error, now=datetime(2026, 11, 16, 9, 6, tzinfo=UTC))
    assert reply.endswith(b"\r")
    return hl7.parse(reply.decode())


def test_ack_accepts_with_aa() -> None:
    raw = message()
    ack = _ack(raw, None)
    assert str(ack["MSH.F9.R1.C1"]) == "ACK"
    assert str(ack["MSH.F9.R1.C2"]) == "A04"
    assert str(ack["MSH.F3"]) == "MASH"
    assert str(ack["MSH.F5"]) == "EDPAS"
    assert str(ack["MSH.F7"]) == "20261116090600+0000"
    assert str(ack["MSH.F12"]) == "2.4"
    assert str(ack["MSA.F1"]) == "AA"
    assert str(ack["MSA.F2"]) == "MSG0001"
    assert ack_for(raw, None, now=GOLDEN_NOW) == ack_for(raw, None, now=GOLDEN_NOW)


def test_ack_reports_content_errors_with_ae_and_err() -> None:
    raw = message(PID_7="20121340", PV1_44="")
    with pytest.raises(AdapterError) as caught:
        Hl7v2Adapter().parse(raw, CONTEXT)
    ack = _ack(raw, caught.value)
    assert str(ack["MSA.F1"]) == "AE"
    assert str(ack["MSA.F3"]).startswith("PID-7")
    errs = ack.segments("ERR")
    assert len(errs) == 2
    assert str(errs[0](1)).startswith("PID^1^7^102")


def test_ack_err_segments_in_v25_form() -> None:
    raw = message(MSH_12="2.5", PV1_44="")
    with pytest.raises(AdapterError) as caught:
        Hl7v2Adapter().parse(raw, CONTEXT)
    ack = _ack(raw, caught.value)
    assert str(ack.segment("ERR")(2)) == "PV1^1^44"
    assert str(ack["ERR.F3.R1.C1"]) == "101"
    assert str(ack["ERR.F4"]) == "E"


def test_ack_rejects_unsupported_and_unreadable_messages_with_ar() -> None:
    raw = message(MSH_9="ORU^R01")
    with pytest.raises(AdapterError) as caught:
        Hl7v2Adapter().parse(raw, CONTEXT)
    assert str(_ack(raw, caught.value)["MSA.F1"]) == "AR"
    garbage = b"\x00\xff not hl7"
    with pytest.raises(AdapterError) as caught:
        Hl7v2Adapter().parse(garbage, CONTEXT)
    ack = _ack(garbage, caught.value)
    assert str(ack["MSA.F1"]) == "AR"
    assert str(ack["MSH.F12"]) == "2.5.1"
    too_big = message() + b" " * Hl7v2Adapter.max_bytes
    with pytest.raises(InputTooLarge) as large:
        Hl7v2Adapter().parse(too_big, CONTEXT)
    assert ack_code(large.value) == "AR"


def test_ack_uses_the_senders_delimiters() -> None:
    raw = message(PV1_44="").translate(bytes.maketrans(b"|^~\\&", b"#$%!@"))
    with pytest.raises(AdapterError) as caught:
        Hl7v2Adapter().parse(raw, CONTEXT)
    reply = ack_for(raw, caught.value, now=GOLDEN_NOW)
    assert reply.startswith(b"MSH#$%!@#")
    assert b"MSA#AE#MSG0001#PV1-44: the arrival (admit) time is required" in reply


# -- the package's public surface -----------------------------------------------------


def test_every_public_name_is_exported() -> None:
    package = adapters.health
    assert set(package.__all__) == {"FhirAdapter", "Hl7v2Adapter", "ack_for", "frame_mllp"}
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"adapters.health.{info.name}")
        exported = set(module.__all__)
        for name in exported:
            assert hasattr(module, name), f"{info.name}.{name}"
        public = {
            n
            for n, v in vars(module).items()
            if not n.startswith("_")
            and getattr(v, "__module__", None) == module.__name__
            and callable(v)
        }
        assert public <= exported, f"{info.name} does not export {public - exported}"


def test_the_public_hl7_parser_gives_the_same_events(monkeypatch: pytest.MonkeyPatch) -> None:
    # The adapter drives the hl7 package's splitter with a cached plan for speed; the
    # package's public parse() is the fallback should those internals change.
    raws = [
        message(extra="NTE|1||a\\F\\b\\T\\c"),
        message().translate(bytes.maketrans(b"|^~\\&", b"#$%!@")),
        *(v for k, v in render(make_scenario(2)).items() if k.endswith(".hl7")),
    ]
    fast = [Hl7v2Adapter().parse(raw, CONTEXT) for raw in raws]
    monkeypatch.setattr(reader, "_split_message", reader._split_with_hl7)
    assert [Hl7v2Adapter().parse(raw, CONTEXT) for raw in raws] == fast


# -- limits checked before the parser builds its lists ------------------------------------


def test_a_message_at_the_limits_is_translated() -> None:
    # Z-segments the adapter ignores pad it out to the limits.
    wide = "ZQA" + "|" * reader.MAX_FIELDS
    dense = "ZQB|" + "~" * reader.MAX_PARTS
    filler = "\n".join(["NTE|1"] * (reader.MAX_SEGMENTS - 6))
    raw = message(extra=f"{wide}\n{dense}\n{filler}")
    assert raw.count(b"\r") == reader.MAX_SEGMENTS
    assert translate(raw).subject is not None


def test_a_message_beyond_the_limits_is_refused_where_it_is() -> None:
    too_many = "\n".join(["NTE|1"] * (reader.MAX_SEGMENTS - 3))
    assert problems(message(extra=too_many)) == {
        "message": f"{reader.MAX_SEGMENTS + 1} segments: at most {reader.MAX_SEGMENTS} are accepted"
    }
    assert problems(message(extra="ZQA" + "|" * (reader.MAX_FIELDS + 1))) == {
        "segment 5 (ZQA)": f"more than {reader.MAX_FIELDS} fields"
    }
    assert problems(message(extra="ZQB|" + "^&~" * (reader.MAX_PARTS // 3 + 1))) == {
        "segment 5 (ZQB)": (
            f"more than {reader.MAX_PARTS} repetitions, components and subcomponents"
        )
    }
