"""The Paris XML adapter: contract, safe parsing (no DTDs or entities), structure, streaming."""

from __future__ import annotations

import io
import itertools
import time
from collections.abc import Iterator, Mapping

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.base import AdapterContext, AdapterError, Problem, StreamingAdapter
from adapters.paris import COLUMNS, ParisCsvAdapter, ParisXmlAdapter
from adapters.paris.columns import MAX_CELL_CHARS
from adapters.paris.xml_export import MAX_DEPTH
from broker.samples.paris import (
    case_status_record,
    csv_document,
    interview_record,
    render,
    xml_document,
    xml_record,
)
from broker.samples.scenario import make_scenario
from schemas.events import CaseStatus, Event, ReturnHomeInterview
from tests.adapters.contract import GOLDEN_NOW, AdapterContract

SCENARIO = make_scenario(1)
CHILD = SCENARIO.children[0]
SAMPLE = render(SCENARIO)["paris/cse-tracker.xml"]
PROLOG = b'<?xml version="1.0" encoding="UTF-8"?>\n'


def case_row(**changes: object) -> dict[str, object]:
    base = case_status_record("CS-000001", CHILD, SCENARIO.tracker[0], SCENARIO.now)
    return {**base, **changes}


def rhi_row(**changes: object) -> dict[str, object]:
    base = interview_record("RHI-000001", CHILD, SCENARIO.episodes[0], SCENARIO.now)
    return {**base, **changes}


def problems_of(raw: bytes, context: AdapterContext) -> list[Problem]:
    with pytest.raises(AdapterError) as caught:
        ParisXmlAdapter().parse(raw, context)
    return list(caught.value.problems)


def locations(raw: bytes, context: AdapterContext) -> list[str]:
    return [p.location for p in problems_of(raw, context)]


def one_record(body: str) -> bytes:
    """A document holding one hand-written ``<record>`` (line 3) whose body starts on line 4."""
    return (
        PROLOG + b"<paris-export>\n<record>\n" + body.encode() + b"\n</record>\n</paris-export>\n"
    )


GOOD_HEAD = """<record_type>case_status</record_type>
<record_id>CS-1</record_id>
<recorded_at>2026-11-20T10:00:00</recorded_at>"""


@pytest.fixture
def context() -> AdapterContext:
    return AdapterContext(source_agency="wam-childrens-services", now=GOLDEN_NOW)


class TestParisXmlContract(AdapterContract):
    adapter_name = "paris-xml"
    sample_input = SAMPLE


class TestMapping:
    def test_same_events_as_the_csv_export(self, context):
        rows = [
            case_row(),
            rhi_row(),
            case_status_record("CS-3", SCENARIO.children[2], None, SCENARIO.now),
        ]
        from_xml = ParisXmlAdapter().parse(xml_document(rows), context)
        from_csv = ParisCsvAdapter().parse(csv_document(rows), context)
        assert from_xml == from_csv
        assert [type(e.body) for e in from_xml] == [CaseStatus, ReturnHomeInterview, CaseStatus]

    def test_minimal_record(self, context):
        raw = one_record(GOOD_HEAD + "\n<person><paris_id>p-1234</paris_id></person>")
        (event,) = ParisXmlAdapter().parse(raw, context)
        assert event.subject is not None
        assert event.subject.paris_id == "P-1234"

    def test_declared_latin1_encoding(self, context):
        body = (
            GOOD_HEAD
            + "\n<person><paris_id>P-1234</paris_id><given_name>Ren\xe9e</given_name></person>"
        )
        raw = (
            b'<?xml version="1.0" encoding="ISO-8859-1"?>\n<paris-export>\n<record>\n'
            + body.encode("latin-1")
            + b"\n</record>\n</paris-export>\n"
        )
        (event,) = ParisXmlAdapter().parse(raw, context)
        assert event.subject is not None
        assert event.subject.given_name == "Ren\xe9e"

    def test_character_references_and_cdata_are_text(self, context):
        body = GOOD_HEAD + (
            "\n<person><paris_id>P-1234</paris_id>"
            "<given_name>R&#233;n&amp;e</given_name>"
            "<family_name><![CDATA[O'Brien <Jr>]]></family_name></person>"
        )
        (event,) = ParisXmlAdapter().parse(one_record(body), context)
        assert event.subject is not None
        assert event.subject.given_name == "R\xe9n&e"
        assert event.subject.family_name == "O'Brien <Jr>"

    def test_empty_export(self, context):
        assert ParisXmlAdapter().parse(PROLOG + b'<paris-export version="1"/>', context) == []

    def test_comments_and_processing_instructions_ignored(self, context):
        raw = one_record(
            "<!-- exported nightly -->\n<?paris build=7?>\n"
            + GOOD_HEAD
            + "\n<person><paris_id>P-1234</paris_id></person>"
        )
        assert len(ParisXmlAdapter().parse(raw, context)) == 1


class TestSafety:
    """DTDs are refused outright, so no entity is ever declared, expanded or fetched."""

    def assert_refused_at(self, raw: bytes, context: AdapterContext, line: int) -> Problem:
        started = time.perf_counter()
        (problem,) = problems_of(raw, context)
        assert time.perf_counter() - started < 0.5
        assert problem.location.startswith(f"line {line}, column ")
        assert "DTD" in problem.reason
        return problem

    def test_billion_laughs(self, context):
        entities = ['<!ENTITY lol0 "lol">'] + [
            f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10)
        ]
        raw = (
            PROLOG
            + b"<!DOCTYPE paris-export [\n"
            + "\n".join(entities).encode()
            + b"\n]>\n<paris-export><record><record_type>&lol9;</record_type></record>"
            + b"</paris-export>"
        )
        self.assert_refused_at(raw, context, line=2)

    def test_quadratic_blowup(self, context):
        big = "x" * 50_000
        raw = (
            PROLOG
            + f'<!DOCTYPE paris-export [<!ENTITY a "{big}">]>\n'.encode()
            + b"<paris-export>"
            + b"&a;" * 5000
            + b"</paris-export>"
        )
        self.assert_refused_at(raw, context, line=2)

    def test_external_entity(self, context, tmp_path):
        secret = tmp_path / "secret.txt"
        secret.write_text("TOP-SECRET-CONTENT")
        raw = (
            PROLOG
            + f'<!DOCTYPE paris-export [<!ENTITY xxe SYSTEM "{secret.as_uri()}">]>\n'.encode()
            + b"<paris-export><record>"
            + GOOD_HEAD.encode()
            + b"<person><paris_id>P-1234</paris_id><given_name>&xxe;</given_name></person>"
            + b"</record></paris-export>"
        )
        problem = self.assert_refused_at(raw, context, line=2)
        assert "TOP-SECRET" not in str(problem)
        streamed = list(ParisXmlAdapter().parse_stream([raw], context))
        assert not any(isinstance(r, Event) for r in streamed)

    def test_external_parameter_entity(self, context):
        raw = (
            PROLOG
            + b"<!DOCTYPE paris-export ["
            + b'<!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd"> %remote;]>\n'
            + b"<paris-export/>"
        )
        self.assert_refused_at(raw, context, line=2)

    def test_external_dtd(self, context):
        raw = (
            PROLOG
            + b'<!DOCTYPE paris-export SYSTEM "http://127.0.0.1:9/paris.dtd">\n<paris-export/>'
        )
        self.assert_refused_at(raw, context, line=2)

    def test_even_a_plain_doctype(self, context):
        self.assert_refused_at(
            PROLOG + b"<!DOCTYPE paris-export>\n<paris-export/>", context, line=2
        )

    def test_undeclared_entity_reference(self, context):
        raw = one_record(GOOD_HEAD + "\n<person><paris_id>&xxe;</paris_id></person>")
        (problem,) = problems_of(raw, context)
        assert problem.location.startswith("line 7, column ")
        assert "undefined entity" in problem.reason

    def test_nesting_too_deep(self, context):
        depth = MAX_DEPTH + 5
        raw = PROLOG + b"<paris-export>" + b"<a>" * depth + b"</a>" * depth + b"</paris-export>"
        *_, problem = problems_of(raw, context)
        assert problem.location.startswith("line 2, column ")
        assert f"deeper than {MAX_DEPTH}" in problem.reason

    def test_long_text_is_not_kept(self, context):
        raw = one_record(
            GOOD_HEAD
            + "\n<person><paris_id>P-1234</paris_id><town>"
            + "x" * 1_000_000
            + "</town></person>"
        )
        (problem,) = problems_of(raw, context)
        assert problem.location == "/paris-export/record[1]/person/town (line 7)"
        assert f"longer than {MAX_CELL_CHARS}" in problem.reason


class TestStructure:
    def test_document_errors_are_located(self, context):
        assert locations(b"", context) == ["line 1, column 0"]
        raw = PROLOG + b"<paris-export>\n<record>\n</recor>\n</paris-export>"
        (problem,) = problems_of(raw, context)
        assert problem.location == "line 4, column 2"
        assert problem.reason == "not well-formed XML: mismatched tag"

    def test_unknown_encoding(self, context):
        raw = SAMPLE.replace(b'encoding="UTF-8"', b'encoding="X-NOT-A-CODEC"')
        (problem,) = problems_of(raw, context)
        assert problem.location.startswith("line 1, column ")
        assert "encoding" in problem.reason

    def test_utf16_with_bom(self, context):
        raw = SAMPLE.replace(b"UTF-8", b"UTF-16").decode().encode("utf-16")
        assert ParisXmlAdapter().parse(raw, context) == ParisXmlAdapter().parse(SAMPLE, context)

    def test_wrong_root(self, context):
        assert locations(PROLOG + b"<export><record/></export>", context) == ["/export (line 2)"]
        namespaced = PROLOG + b'<paris-export xmlns="urn:example"/>'
        assert locations(namespaced, context) == ["/{urn:example}paris-export (line 2)"]

    def test_structural_faults_name_element_and_line(self, context):
        body = (
            GOOD_HEAD
            + "\n<paris_id>P-1234</paris_id>"  # line 7: outside <person>
            + "\n<person><town><b>x</b></town>stray</person>"  # line 8
            + "\n<person><given_name>A</given_name><given_name>B</given_name></person>"  # line 9
            + "\n<unknown/>"  # line 10
            + '\n<case child_protection_plan="Y"/>'  # line 11
        )
        found = problems_of(one_record(body), context)
        assert [str(p) for p in found] == [
            "/paris-export/record[1]/paris_id (line 7): belongs in <person>",
            "/paris-export/record[1]/person/town/b (line 8): <town> must hold text only",
            "/paris-export/record[1]/person (line 8): holds text outside a column element",
            "/paris-export/record[1]/person/given_name (line 9): appears more than once",
            "/paris-export/record[1]/unknown (line 10): is not an element of the Paris export",
            "/paris-export/record[1]/case (line 11): attributes are not used in records",
            "/paris-export/record[1]/person/paris_id (line 3): is required in case_status records",
        ]

    def test_value_faults_name_element_and_line(self, context):
        body = (
            GOOD_HEAD
            + "\n<person>\n<paris_id>P-1234</paris_id>"
            + "\n<nhs_number>9990010006</nhs_number>\n</person>"
            + "\n<cse_tracker><cse_risk_level>5</cse_risk_level></cse_tracker>"
        )
        found = problems_of(one_record(body), context)
        assert [p.location for p in found] == [
            "/paris-export/record[1]/cse_tracker/cse_risk_level (line 11)",
            "/paris-export/record[1]/person/nhs_number (line 9)",
        ]
        assert "9990010006" not in "; ".join(str(p) for p in found)

    def test_root_attributes(self, context):
        raw = PROLOG + b'<paris-export version="2" exported_at="2026-11-20T10:00:00" colour="red"/>'
        found = [str(p) for p in problems_of(raw, context)]
        assert found == [
            "/paris-export (line 2): has an attribute the export does not use",
            "/paris-export (line 2): version must be 1",
        ]

    def test_stray_top_level_element(self, context):
        raw = PROLOG + b"<paris-export>\n<batch/>\n</paris-export>"
        assert locations(raw, context) == ["/paris-export/batch (line 3)"]


class TestStreaming:
    def test_is_a_streaming_adapter(self, context):
        adapter: StreamingAdapter = ParisXmlAdapter()  # checked by mypy against the protocol
        assert [
            str(getattr(r, "location", r)) for r in adapter.parse_stream(iter([]), context)
        ] == ["line 1, column 0"]

    def records(self, total: int, bad: int | None = None) -> list[Mapping[str, object]]:
        return [
            case_row(
                record_id=f"CS-{n:06d}", nhs_number="9990010006" if n == bad else CHILD.nhs_number
            )
            for n in range(1, total + 1)
        ]

    def test_one_bad_record_among_many(self, context):
        total, bad = 300, 77
        raw = xml_document(self.records(total, bad))
        results = list(ParisXmlAdapter().parse_stream(io.BytesIO(raw), context))
        events = [r for r in results if isinstance(r, Event)]
        problems = [r for r in results if isinstance(r, Problem)]
        assert len(events) == total - 1
        (problem,) = problems
        assert problem.location.startswith(f"/paris-export/record[{bad}]/person/nhs_number (line ")
        line = int(problem.location.rsplit("line ", 1)[1].rstrip(")"))
        assert b"<nhs_number>9990010006</nhs_number>" in raw.splitlines()[line - 1]

    @pytest.mark.parametrize("size", [1, 7, 4096])
    def test_any_chunking_gives_the_same_result(self, context, size):
        chunks = (SAMPLE[i : i + size] for i in range(0, len(SAMPLE), size))
        assert list(ParisXmlAdapter().parse_stream(chunks, context)) == ParisXmlAdapter().parse(
            SAMPLE, context
        )

    def test_records_before_a_fatal_error_are_kept(self, context):
        good = xml_document(self.records(3)).replace(b"</paris-export>\n", b"")
        raw = good + b"  <record>\n  <record_type>case_status</record_typo>\n"
        results = list(ParisXmlAdapter().parse_stream([raw], context))
        assert [type(r).__name__ for r in results] == ["Event", "Event", "Event", "Problem"]
        assert "mismatched tag" in str(results[-1])

    def test_results_come_before_the_input_ends(self, context):
        def endless() -> Iterator[bytes]:
            yield PROLOG + b"<paris-export>\n"
            for n in itertools.count(1):
                yield xml_record(case_row(record_id=f"CS-{n:06d}")).encode()

        first = list(itertools.islice(ParisXmlAdapter().parse_stream(endless(), context), 3))
        assert [e.metadata.source.reference for e in first if isinstance(e, Event)] == [
            "CS-000001",
            "CS-000002",
            "CS-000003",
        ]


_text = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=20),
    st.sampled_from(["", "Y", "3", "2026-03-29T01:30", "31/02/2026", "E06000040"]),
)


@settings(
    max_examples=100, deadline=1000, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(changes=st.dictionaries(st.sampled_from([c.name for c in COLUMNS]), _text, max_size=6))
def test_random_values_give_events_or_located_problems(context, changes):
    for base in (case_row(), rhi_row()):
        raw = xml_document([{**base, **changes}])
        try:
            events = ParisXmlAdapter().parse(raw, context)
        except AdapterError as exc:
            for problem in exc.problems:
                assert problem.location.startswith(("/paris-export/record[1]", "line "))
        else:
            assert len(events) == 1
