"""The Paris export's column set: names, record types, XML groups and limits, for both formats."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "COLUMNS",
    "COLUMN_NAMES",
    "GROUPS",
    "MAX_CELL_CHARS",
    "MAX_LINE_BYTES",
    "REQUIRED_COLUMNS",
    "Column",
    "Kind",
    "RecordType",
    "column",
]

#: The longest value any column may hold, in characters (the canonical short-text limit).
MAX_CELL_CHARS = 200
#: The longest physical line a bulk file may hold, in bytes; a longer one is refused unread.
MAX_LINE_BYTES = 64 * 1024


class RecordType(StrEnum):
    """What one row (CSV) or ``<record>`` (XML) describes."""

    CASE_STATUS = "case_status"
    RETURN_INTERVIEW = "return_interview"


class Kind(StrEnum):
    """How a column's text is read."""

    TEXT = "text"
    CODE = "code"
    DATE = "date"
    DATETIME = "datetime"
    FLAG = "flag"
    LEVEL = "level"


#: Rows of every record type may fill the column.
_ALL = frozenset(RecordType)
_CASE = frozenset({RecordType.CASE_STATUS})
_RHI = frozenset({RecordType.RETURN_INTERVIEW})


@dataclass(frozen=True, slots=True)
class Column:
    """One column of the export (one element in XML).

    ``group`` is the XML element the column sits in (``record`` means directly inside
    ``<record>``); ``used_by`` are the record types that may fill it; ``required_by`` those
    that must.
    """

    name: str
    group: str
    kind: Kind
    used_by: frozenset[RecordType]
    required_by: frozenset[RecordType]
    description: str


def _col(
    name: str,
    group: str,
    kind: Kind,
    description: str,
    *,
    used_by: frozenset[RecordType] = _ALL,
    required_by: frozenset[RecordType] = frozenset(),
) -> Column:
    return Column(name, group, kind, used_by, required_by, description)


COLUMNS: tuple[Column, ...] = (
    _col(
        "record_type",
        "record",
        Kind.CODE,
        "`case_status` or `return_interview`",
        required_by=_ALL,
    ),
    _col(
        "record_id",
        "record",
        Kind.CODE,
        "Paris's id of the record (1-64 of `A-Z a-z 0-9 / _ . : -`)",
        required_by=_ALL,
    ),
    _col(
        "recorded_at",
        "record",
        Kind.DATETIME,
        "when Paris last changed the record; a case status is as of this instant",
        required_by=_ALL,
    ),
    _col("paris_id", "person", Kind.CODE, "Paris person id, e.g. `P-200100`", required_by=_ALL),
    _col("given_name", "person", Kind.TEXT, "given name"),
    _col("family_name", "person", Kind.TEXT, "family name"),
    _col("date_of_birth", "person", Kind.DATE, "date of birth"),
    _col("sex", "person", Kind.CODE, "`M`, `F`, `O`, `U` or `male`, `female`, `other`, `unknown`"),
    _col("nhs_number", "person", Kind.CODE, "NHS number, 10 digits (spaces allowed)"),
    _col("address_line_1", "person", Kind.TEXT, "home address, first line"),
    _col("address_line_2", "person", Kind.TEXT, "home address, second line"),
    _col("town", "person", Kind.TEXT, "home address, town"),
    _col("postcode", "person", Kind.CODE, "home address, postcode"),
    _col("local_authority", "person", Kind.CODE, "ONS code of the home address's authority"),
    _col("looked_after", "care", Kind.FLAG, "the child is looked after"),
    _col(
        "placing_authority",
        "care",
        Kind.CODE,
        "ONS code of the placing (responsible) authority; required when looked after",
    ),
    _col("placed_in", "care", Kind.CODE, "ONS code of the authority the child is placed in"),
    _col(
        "placement_type",
        "care",
        Kind.CODE,
        "`foster`, `residential`, `kinship`, `semi_independent`, `secure` or `other`",
    ),
    _col(
        "child_protection_plan",
        "case",
        Kind.FLAG,
        "the child is on a child protection plan",
        used_by=_CASE,
    ),
    _col(
        "child_protection_plan_since",
        "case",
        Kind.DATE,
        "when the plan started; only with a plan",
        used_by=_CASE,
    ),
    _col("child_in_need", "case", Kind.FLAG, "the child is a child in need (s.17)", used_by=_CASE),
    _col(
        "cse_risk_level",
        "cse_tracker",
        Kind.LEVEL,
        "CSE risk level `1`, `2` or `3`; empty when the child is not on the tracker",
        used_by=_CASE,
    ),
    _col(
        "cse_identified_on",
        "cse_tracker",
        Kind.DATE,
        "when the risk was identified; required with a level",
        used_by=_CASE,
    ),
    _col(
        "cse_removed_on",
        "cse_tracker",
        Kind.DATE,
        "when the child was removed from the tracker",
        used_by=_CASE,
    ),
    _col(
        "cse_removal_reason",
        "cse_tracker",
        Kind.CODE,
        "`successful_intervention`, `moved_away`, `reached_adulthood`, "
        "`no_longer_assessed_at_risk` or `other`; given exactly when `cse_removed_on` is",
        used_by=_CASE,
    ),
    _col(
        "episode_id",
        "return_interview",
        Kind.CODE,
        "the missing episode's id (the police episode reference)",
        used_by=_RHI,
        required_by=_RHI,
    ),
    _col(
        "rhi_offered_at",
        "return_interview",
        Kind.DATETIME,
        "when the return home interview was offered",
        used_by=_RHI,
        required_by=_RHI,
    ),
    _col(
        "rhi_completed_at",
        "return_interview",
        Kind.DATETIME,
        "when it was completed; empty while outstanding or when declined",
        used_by=_RHI,
    ),
    _col("rhi_declined", "return_interview", Kind.FLAG, "the child declined", used_by=_RHI),
    _col(
        "rhi_conducted_by",
        "return_interview",
        Kind.CODE,
        "party id of the service that conducted it, e.g. `wam-childrens-services`",
        used_by=_RHI,
    ),
    _col(
        "rhi_cse_concerns_disclosed",
        "return_interview",
        Kind.FLAG,
        "CSE concerns were disclosed in the interview",
        used_by=_RHI,
    ),
)

COLUMN_NAMES: frozenset[str] = frozenset(c.name for c in COLUMNS)
#: Columns a CSV header must name whatever the file holds.
REQUIRED_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.required_by == _ALL)
#: XML group elements inside ``<record>``, in document order.
GROUPS: tuple[str, ...] = tuple(dict.fromkeys(c.group for c in COLUMNS if c.group != "record"))

_BY_NAME = {c.name: c for c in COLUMNS}


def column(name: str) -> Column:
    """The column called ``name``.

    Raises:
        KeyError: no column has that name.
    """
    return _BY_NAME[name]
