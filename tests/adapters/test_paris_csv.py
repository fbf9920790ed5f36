"""The Paris CSV adapter: contract, header and row faults, streaming, times, and safety limits."""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.base import AdapterContext, AdapterError, Problem, StreamingAdapter
from adapters.paris import COLUMNS, Column, ParisCsvAdapter, ParisXmlAdapter, RecordType
from adapters.paris.columns import MAX_CELL_CHARS, MAX_LINE_BYTES
from adapters.paris.mapping import MAX_PROBLEMS
from broker.samples.paris import (
    case_status_record,
    csv_document,
    csv_header,
    csv_line,
    interview_record,
    render,
    xml_document,
)
from broker.samples.scenario import make_scenario
from schemas.events import CaseStatus, Event, LawfulBasis, RemovalReason, ReturnHomeInterview
from tests.adapters.contract import GOLDEN_NOW, AdapterContract

SCENARIO = make_scenario(1)
CHILD = SCENARIO.children[0]
SAMPLE = render(SCENARIO)["paris/cse-tracker.csv"]


def case_row(**changes: object) -> dict[str, object]:
    """A valid case-status record for child-1 (level 3 on the tracker), with changes."""
    base = case_status_record("CS-000001", CHILD, SCENARIO.tracker[0], SCENARIO.now)
    return {**base, **changes}


def rhi_row(**changes: object) -> dict[str, object]:
    """A valid completed return home interview for child-1's first episode, with changes."""
    base = interview_record("RHI-000001", CHILD, SCENARIO.episodes[0], SCENARIO.now)
    return {**base, **changes}


def lines_of(rows: Iterable[Mapping[str, object]]) -> Iterator[bytes]:
    yield csv_header()
    for row in rows:
        yield csv_line(row)


def problems_of(raw: bytes, context: AdapterContext) -> list[Problem]:
    with pytest.raises(AdapterError) as caught:
        ParisCsvAdapter().parse(raw, context)
    return list(caught.value.problems)


def locations(raw: bytes, context: AdapterContext) -> list[str]:
    return [p.location for p in problems_of(raw, context)]


@pytest.fixture
def context() -> AdapterContext:
    return AdapterContext(source_agency="wam-childrens-services", now=GOLDEN_NOW)


class TestParisCsvContract(AdapterContract):
    adapter_name = "paris-csv"
    sample_input = SAMPLE


class TestMapping:
    def test_case_status_row_maps_every_column(self, context):
        row = case_row(address_line_2="Furze Platt", child_in_need=True)
        (event,) = ParisCsvAdapter().parse(csv_document([row]), context)
        assert isinstance(event.body, CaseStatus)
        subject = event.subject
        assert subject is not None
        assert subject.paris_id == CHILD.paris_id
        assert subject.nhs_number == CHILD.nhs_number
        assert subject.date_of_birth == CHILD.date_of_birth
        assert subject.home_address is not None
        assert subject.home_address.lines == (CHILD.address_line, "Furze Platt")
        assert subject.home_address.local_authority == "E06000040"
        assert subject.looked_after is None
        body = event.body
        assert body.as_of == SCENARIO.now
        assert body.child_protection_plan is True
        assert body.child_protection_plan_since == SCENARIO.tracker[0].child_protection_plan_since
        assert body.child_in_need is True
        assert body.cse_tracker is not None
        assert int(body.cse_tracker.level) == 3
        assert body.cse_tracker.identified_on == SCENARIO.tracker[0].identified_on
        assert event.metadata.source.agency == "wam-childrens-services"
        assert event.metadata.source.system == "paris"
        assert event.metadata.source.reference == "CS-000001"
        assert event.metadata.correlation_id is None
        assert event.metadata.lawful_basis is LawfulBasis.CA_2004_S11

    def test_removal_from_tracker(self, context):
        row = case_row(
            cse_risk_level=2,
            cse_identified_on=date(2026, 5, 1),
            cse_removed_on=date(2026, 7, 20),
            cse_removal_reason=RemovalReason.SUCCESSFUL_INTERVENTION,
        )
        (event,) = ParisCsvAdapter().parse(csv_document([row]), context)
        assert isinstance(event.body, CaseStatus)
        tracker = event.body.cse_tracker
        assert tracker is not None
        assert tracker.removed_on == date(2026, 7, 20)
        assert tracker.removal_reason is RemovalReason.SUCCESSFUL_INTERVENTION

    def test_looked_after_child_placed_out_of_area(self, context):
        child = SCENARIO.children[2]
        row = case_status_record("CS-000003", child, None, SCENARIO.now)
        (event,) = ParisCsvAdapter().parse(csv_document([row]), context)
        assert event.subject is not None
        looked_after = event.subject.looked_after
        assert looked_after is not None
        assert looked_after.responsible_authority == "E06000039"
        assert looked_after.placed_in == "E06000040"
        assert looked_after.out_of_area

    def test_interview_row(self, context):
        episode = SCENARIO.episodes[0]
        (event,) = ParisCsvAdapter().parse(csv_document([rhi_row()]), context)
        body = event.body
        assert isinstance(body, ReturnHomeInterview)
        assert body.episode_id == episode.episode_id
        assert body.offered_at == episode.rhi_offered_at
        assert body.completed_at == episode.rhi_completed_at
        assert body.conducted_by == "wam-childrens-services"
        assert body.cse_concerns_disclosed is True
        assert event.metadata.correlation_id == episode.episode_id
        assert event.metadata.occurred_at == episode.rhi_completed_at

    def test_declined_interview(self, context):
        row = rhi_row(rhi_completed_at=None, rhi_declined=True, rhi_conducted_by=None)
        (event,) = ParisCsvAdapter().parse(csv_document([row]), context)
        assert isinstance(event.body, ReturnHomeInterview)
        assert event.body.declined is True
        assert event.metadata.occurred_at == SCENARIO.episodes[0].rhi_offered_at

    def test_context_lawful_basis_wins(self):
        context = AdapterContext(
            "wam-childrens-services", GOLDEN_NOW, lawful_basis=LawfulBasis.CA_1989_S47
        )
        (event,) = ParisCsvAdapter().parse(csv_document([case_row()]), context)
        assert event.metadata.lawful_basis is LawfulBasis.CA_1989_S47

    def test_event_ids_stable_across_resends_and_formats(self, context):
        first = ParisCsvAdapter().parse(SAMPLE, context)
        again = ParisCsvAdapter().parse(SAMPLE, context)
        as_xml = ParisXmlAdapter().parse(render(SCENARIO)["paris/cse-tracker.xml"], context)
        assert [e.metadata.event_id for e in first] == [e.metadata.event_id for e in again]
        assert first == as_xml

    def test_a_changed_record_gets_a_new_event_id(self, context):
        earlier = ParisCsvAdapter().parse(csv_document([case_row()]), context)[0]
        later_time = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
        later = ParisCsvAdapter().parse(csv_document([case_row(recorded_at=later_time)]), context)
        assert later[0].metadata.event_id != earlier.metadata.event_id

    def test_header_only_is_an_empty_export(self, context):
        assert ParisCsvAdapter().parse(csv_header(), context) == []

    def test_header_may_name_only_the_columns_used(self, context):
        names = ("record_type", "record_id", "recorded_at", "paris_id", "nhs_number")
        raw = (",".join(names) + "\ncase_status,CS-9,20/11/2026 10:00,P-1234,9990010005\n").encode()
        (event,) = ParisCsvAdapter().parse(raw, context)
        assert event.subject is not None
        assert event.subject.nhs_number == "9990010005"

    def test_header_names_forgive_case_and_spaces(self, context):
        header = csv_header().decode().upper().replace(",", " , ")
        raw = header.encode() + csv_line(case_row())
        assert len(ParisCsvAdapter().parse(raw, context)) == 1


class TestTimes:
    @pytest.mark.parametrize(
        ("local", "utc"),
        [
            # Last Sunday of March 2026: 01:00 GMT jumps to 02:00 BST.
            ("29/03/2026 00:30", datetime(2026, 3, 29, 0, 30, tzinfo=UTC)),
            ("29/03/2026 01:30", datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),  # in the gap
            ("29/03/2026 02:30", datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),
            # Last Sunday of October 2026: 02:00 BST falls back to 01:00 GMT.
            ("25/10/2026 00:30", datetime(2026, 10, 24, 23, 30, tzinfo=UTC)),
            ("25/10/2026 01:30", datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),  # first reading
            ("25/10/2026 02:30", datetime(2026, 10, 25, 2, 30, tzinfo=UTC)),
            ("2026-07-01T12:00:00", datetime(2026, 7, 1, 11, 0, tzinfo=UTC)),
            ("2026-07-01 12:00", datetime(2026, 7, 1, 11, 0, tzinfo=UTC)),
            ("2026-07-01T12:00:00Z", datetime(2026, 7, 1, 12, 0, tzinfo=UTC)),
            ("2026-07-01T12:00:00+02:00", datetime(2026, 7, 1, 10, 0, tzinfo=UTC)),
            ("01/07/2026 12:00:30", datetime(2026, 7, 1, 11, 0, 30, tzinfo=UTC)),
        ],
    )
    def test_local_times_become_utc(self, context, local, utc):
        (event,) = ParisCsvAdapter().parse(csv_document([case_row(recorded_at=local)]), context)
        assert event.metadata.recorded_at == utc
        assert event.metadata.recorded_at.tzinfo is UTC

    @pytest.mark.parametrize("text", ["02/04/2011", "2011-04-02", "2/4/2011"])
    def test_dates_uk_order_or_iso(self, context, text):
        (event,) = ParisCsvAdapter().parse(csv_document([case_row(date_of_birth=text)]), context)
        assert event.subject is not None
        assert event.subject.date_of_birth == date(2011, 4, 2)

    @pytest.mark.parametrize(
        ("column", "text", "reason"),
        [
            ("date_of_birth", "31/02/2011", "not a real calendar date"),
            ("date_of_birth", "2011/04/02", "not a date"),
            ("date_of_birth", "04-02-2011", "not a date"),
            ("recorded_at", "20/11/2026", "not a date and time"),
            ("recorded_at", "20/11/2026 25:00", "not a real date and time"),
            ("recorded_at", "0001-01-01T00:00+01:00", "not a real date and time"),
            ("recorded_at", "31/12/9999 23:59", "is in the future"),
            ("recorded_at", "01/01/0001 00:00", "years ago"),
            ("cse_removed_on", "01/01/1999", "years ago"),
            ("recorded_at", "30/11/2026 10:00", "is in the future"),
            ("cse_identified_on", "01/01/2027", "is in the future"),
            ("date_of_birth", "01/01/1990", "age over"),
            ("date_of_birth", "01/01/2027", "in the future"),
            ("cse_identified_on", "01/01/2010", "before the date of birth"),
        ],
    )
    def test_implausible_dates_are_located(self, context, column, text, reason):
        (problem,) = problems_of(csv_document([case_row(**{column: text})]), context)
        assert problem.location == f"row 1, column {column}"
        assert reason in problem.reason

    def test_interview_times_checked(self, context):
        row = rhi_row(rhi_completed_at="01/09/2026 10:00")
        (problem,) = problems_of(csv_document([row]), context)
        assert problem.location == "row 1, column rhi_completed_at"
        assert "before rhi_offered_at" in problem.reason


class TestRowFaults:
    @pytest.mark.parametrize(
        ("changes", "expected"),
        [
            ({"record_type": "case"}, "row 1, column record_type"),
            ({"record_type": ""}, "row 1, column record_type"),
            ({"paris_id": ""}, "row 1, column paris_id"),
            ({"record_id": "CS 1"}, "row 1, column record_id"),
            ({"paris_id": "p 1"}, "row 1, column paris_id"),
            ({"nhs_number": "9990010006"}, "row 1, column nhs_number"),
            ({"postcode": "NOT A POSTCODE"}, "row 1, column postcode"),
            ({"local_authority": "X12345"}, "row 1, column local_authority"),
            ({"sex": "Q"}, "row 1, column sex"),
            ({"looked_after": "maybe"}, "row 1, column looked_after"),
            ({"placement_type": "foster"}, "row 1, column placement_type"),
            ({"cse_risk_level": "4"}, "row 1, column cse_risk_level"),
            ({"cse_risk_level": None}, "row 1, column cse_identified_on"),
            ({"cse_identified_on": None}, "row 1, column cse_identified_on"),
            ({"cse_removed_on": "01/11/2026"}, "row 1, column cse_removal_reason"),
            ({"cse_removal_reason": "moved_away"}, "row 1, column cse_removed_on"),
            ({"cse_removal_reason": "bored"}, "row 1, column cse_removal_reason"),
            (
                {"cse_removed_on": "01/09/2026", "cse_removal_reason": "other"},
                "row 1, column cse_removed_on",
            ),
            ({"child_protection_plan": False}, "row 1, column child_protection_plan_since"),
            ({"episode_id": "TVP-1"}, "row 1, column episode_id"),
            ({"looked_after": True}, "row 1, column placing_authority"),
            ({"given_name": "x" * (MAX_CELL_CHARS + 1)}, "row 1, column given_name"),
        ],
    )
    def test_case_status_faults_name_row_and_column(self, context, changes, expected):
        assert expected in locations(csv_document([case_row(**changes)]), context)

    @pytest.mark.parametrize(
        ("changes", "expected"),
        [
            ({"episode_id": None}, "row 1, column episode_id"),
            ({"episode_id": "no spaces allowed"}, "row 1, column episode_id"),
            ({"rhi_offered_at": None}, "row 1, column rhi_offered_at"),
            ({"rhi_declined": True}, "row 1, column rhi_declined"),
            ({"rhi_conducted_by": "Youth Team"}, "row 1, column rhi_conducted_by"),
            ({"cse_risk_level": 2}, "row 1, column cse_risk_level"),
        ],
    )
    def test_interview_faults_name_row_and_column(self, context, changes, expected):
        assert expected in locations(csv_document([rhi_row(**changes)]), context)

    def test_every_bad_row_is_listed(self, context):
        rows = [
            case_row(),
            case_row(nhs_number="9990010006"),
            rhi_row(),
            rhi_row(rhi_offered_at="yesterday", sex="Q"),
        ]
        found = locations(csv_document(rows), context)
        assert found == [
            "row 2, column nhs_number",
            "row 4, column sex",
            "row 4, column rhi_offered_at",
        ]

    def test_problems_never_quote_personal_data(self, context):
        bad = case_row(
            nhs_number="9990010006",
            date_of_birth="31/02/2011",
            postcode="QQ QQ",
            given_name="Zephyrine" * 30,
        )
        problems = problems_of(csv_document([bad]), context)
        text = "; ".join(str(p) for p in problems)
        assert len(problems) == 4
        for secret in ("9990010006", "31/02/2011", "QQ QQ", "Zephyrine", CHILD.family_name):
            assert secret not in text

    def test_wrong_cell_count(self, context):
        raw = csv_header() + csv_line(case_row()).replace(b"\r\n", b",extra\r\n")
        (problem,) = problems_of(raw, context)
        assert problem.location == "row 1"
        assert "cells" in problem.reason

    def test_bad_quoting_is_one_row_and_the_rest_survive(self, context):
        good = csv_line(case_row())
        broken = b'case_status,"CS-2"x' + good[len(b"case_status,CS-000001") :]
        raw = csv_header() + broken + good
        results = list(ParisCsvAdapter().parse_stream(io.BytesIO(raw), context))
        assert [type(r).__name__ for r in results] == ["Problem", "Event"]
        assert isinstance(results[0], Problem)
        assert results[0].location == "row 1"
        assert "not valid CSV" in results[0].reason

    def test_quoted_line_breaks_stay_in_their_cell(self, context):
        row = case_row(address_line_1="Flat 2\r\n14 Larkspur Close")
        raw = csv_document([row, case_row(nhs_number="9990010006")])
        assert raw.count(b"\n") == 4  # the header, two rows, and one inside a cell
        (problem,) = problems_of(raw, context)
        assert problem.location == "row 2, column nhs_number"
        (event,) = ParisCsvAdapter().parse(csv_document([row]), context)
        assert event.subject is not None
        assert event.subject.home_address is not None
        assert event.subject.home_address.lines == ("Flat 2 14 Larkspur Close",)

    def test_blank_rows_are_counted_and_skipped(self, context):
        raw = csv_header() + b"\r\n" + csv_line(case_row(nhs_number="9990010006"))
        assert locations(raw, context) == ["row 2, column nhs_number"]

    def test_utf8_bom_and_crlf_accepted(self, context):
        events = ParisCsvAdapter().parse(b"\xef\xbb\xbf" + SAMPLE, context)
        assert len(events) == len(ParisCsvAdapter().parse(SAMPLE, context))

    def test_control_characters_are_stripped(self, context):
        row = case_row(given_name="El\x07lie\x00", town="Maiden\x1bhead")
        (event,) = ParisCsvAdapter().parse(csv_document([row]), context)
        assert event.subject is not None
        assert event.subject.given_name == "Ellie"
        assert event.subject.home_address is not None
        assert event.subject.home_address.town == "Maidenhead"

    def test_bytes_that_are_not_utf8_are_located(self, context):
        line = csv_line(case_row(given_name="Ellie")).replace(b"Ellie", b"Ell\xe9")
        (problem,) = problems_of(csv_header() + line, context)
        assert problem.location == "row 1, column given_name"
        assert "UTF-8" in problem.reason

    def test_over_long_line_inside_a_quoted_cell(self, context):
        good = csv_line(case_row())
        spanning = csv_line(case_row(address_line_1="Flat 2\nPLACEHOLDER\nLarkspur Close"))
        assert spanning.count(b"\n") == 3  # quoted: the breaks stay inside the cell
        long_line = spanning.replace(b"PLACEHOLDER", b"x" * (MAX_LINE_BYTES + 1))
        raw = csv_header() + good + long_line + good
        results = list(ParisCsvAdapter().parse_stream(io.BytesIO(raw), context))
        assert [type(r).__name__ for r in results] == ["Event", "Problem", "Event"]
        assert results[1] == Problem("row 2", f"has a line longer than {MAX_LINE_BYTES} bytes")

    def test_over_long_header(self, context):
        raw = b"record_type," * MAX_LINE_BYTES + b"\n" + csv_line(case_row())
        assert [str(p) for p in problems_of(raw, context)] == [
            f"header: is longer than {MAX_LINE_BYTES} bytes"
        ]

    def test_line_over_the_limit_is_refused_unread(self, context):
        long_line = b"case_status," + b"x" * (MAX_LINE_BYTES + 1) + b"\n"
        raw = csv_header() + long_line + csv_line(case_row())
        results = list(ParisCsvAdapter().parse_stream(io.BytesIO(raw), context))
        assert isinstance(results[0], Problem)
        assert results[0].location == "row 1"
        assert "longer than" in results[0].reason
        assert isinstance(results[1], Event)

    def test_problem_list_is_capped(self, context):
        bad = csv_line(case_row(nhs_number="9990010006"))
        raw = csv_header() + bad * (MAX_PROBLEMS + 5)
        problems = problems_of(raw, context)
        assert len(problems) == MAX_PROBLEMS + 1
        assert problems[-1].location == "message"
        assert "5 further problems" in problems[-1].reason


class TestHeader:
    def test_unknown_column_named_by_position_with_a_hint(self, context):
        header = csv_header().replace(b"nhs_number", b"nhs_no")
        (problem,) = problems_of(header + csv_line(case_row()), context)
        position = [c.name for c in COLUMNS].index("nhs_number") + 1
        assert problem.location == f"header, column {position}"
        assert "did you mean nhs_number" in problem.reason
        assert "nhs_no" not in problem.reason.replace("nhs_number", "")

    def test_missing_required_column(self, context):
        names = [c.name for c in COLUMNS if c.name != "paris_id"]
        raw = (",".join(names) + "\n").encode()
        assert locations(raw, context) == ["header, column paris_id"]

    def test_duplicate_column(self, context):
        raw = b"record_type,record_id,recorded_at,paris_id,town,town\n"
        assert locations(raw, context) == ["header, column town"]

    def test_a_data_row_as_header_is_not_echoed(self, context):
        raw = csv_line(case_row()) + csv_line(case_row())
        problems = problems_of(raw, context)
        text = "; ".join(str(p) for p in problems)
        assert "header, column record_type" in text
        assert CHILD.given_name not in text
        assert CHILD.nhs_number not in text

    def test_empty_input(self, context):
        assert locations(b"", context) == ["header"]

    def test_too_many_header_cells(self, context):
        raw = b",".join([b"c"] * 10_000) + b"\n"
        (problem,) = problems_of(raw, context)
        assert problem.location == "header"

    def test_bad_header_stops_the_stream(self, context):
        header = csv_header().replace(b"paris_id", b"person")
        lines = [header, csv_line(case_row()), csv_line(case_row())]
        results = list(ParisCsvAdapter().parse_stream(iter(lines), context))
        assert results
        assert all(isinstance(r, Problem) for r in results)
        assert [r.location for r in results if isinstance(r, Problem)] == [
            "header, column 4",
            "header, column paris_id",
        ]


class TestStreaming:
    def test_is_a_streaming_adapter(self, context):
        adapter: StreamingAdapter = ParisCsvAdapter()  # checked by mypy against the protocol
        assert [
            str(getattr(r, "location", r)) for r in adapter.parse_stream(iter([]), context)
        ] == ["header"]

    def test_one_bad_row_among_many(self, context):
        total, bad = 500, 137
        rows = [
            case_row(
                record_id=f"CS-{n:06d}", nhs_number="9990010006" if n == bad else CHILD.nhs_number
            )
            for n in range(1, total + 1)
        ]
        results = list(ParisCsvAdapter().parse_stream(lines_of(rows), context))
        events = [r for r in results if isinstance(r, Event)]
        problems = [r for r in results if isinstance(r, Problem)]
        assert len(events) == total - 1
        assert problems == [
            Problem(
                "row 137, column nhs_number",
                "not a valid NHS number (10 digits, modulus-11 check digit)",
            )
        ]
        assert f"CS-{bad:06d}" not in {e.metadata.source.reference for e in events}

    def test_results_come_before_the_input_ends(self, context):
        def endless() -> Iterator[bytes]:
            yield csv_header()
            for n in itertools.count(1):
                yield csv_line(case_row(record_id=f"CS-{n:06d}"))

        first = list(itertools.islice(ParisCsvAdapter().parse_stream(endless(), context), 5))
        assert [e.metadata.source.reference for e in first if isinstance(e, Event)] == [
            f"CS-{n:06d}" for n in range(1, 6)
        ]

    def test_reads_a_binary_file(self, context, tmp_path):
        path = tmp_path / "export.csv"
        path.write_bytes(SAMPLE)
        with path.open("rb") as handle:
            streamed = list(ParisCsvAdapter().parse_stream(handle, context))
        assert streamed == ParisCsvAdapter().parse(SAMPLE, context)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rendered_samples_translate(seed):
    scenario = make_scenario(seed)
    files = render(scenario)
    context = AdapterContext("wam-childrens-services", scenario.now)
    csv_events = ParisCsvAdapter().parse(files["paris/cse-tracker.csv"], context)
    xml_events = ParisXmlAdapter().parse(files["paris/cse-tracker.xml"], context)
    assert len(csv_events) == len(scenario.children) + sum(
        1 for e in scenario.episodes if e.rhi_offered_at <= scenario.now
    )
    assert csv_events == xml_events
    assert xml_document([]) != files["paris/cse-tracker.xml"]


_cell = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", "Y", "N", "1", "3", "29/03/2026 01:30", "2026-02-30", "E06000040"]),
)


@settings(
    max_examples=120,
    deadline=1000,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(changes=st.dictionaries(st.sampled_from([c.name for c in COLUMNS]), _cell, max_size=6))
def test_random_values_give_events_or_located_problems(context, changes):
    for base in (case_row(), rhi_row()):
        raw = csv_document([{**base, **changes}])
        try:
            events = ParisCsvAdapter().parse(raw, context)
        except AdapterError as exc:
            for problem in exc.problems:
                assert problem.location.startswith(("row 1", "header"))
        else:
            assert len(events) == 1
        streamed = list(ParisCsvAdapter().parse_stream(io.BytesIO(raw), context))
        assert all(isinstance(r, Event | Problem) for r in streamed)


def test_partner_documentation_lists_the_column_set():
    """docs/partners/paris.md is the interface; its column table must be the code's."""
    doc = (Path(__file__).parents[2] / "docs" / "partners" / "paris.md").read_text()
    table = doc.split("| column | group |", 1)[1].split("\n\n", 1)[0]
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in table.splitlines()
        if line.startswith("| `")
    ]

    def mark(column: Column, record_type: RecordType) -> str:
        if record_type in column.required_by:
            return "required"
        return "optional" if record_type in column.used_by else "—"

    expected = [
        [
            f"`{c.name}`",
            f"`{c.group}`",
            mark(c, RecordType.CASE_STATUS),
            mark(c, RecordType.RETURN_INTERVIEW),
            c.description,
        ]
        for c in COLUMNS
    ]
    assert rows == expected
