"""The Paris CSV export (adapter ``paris-csv``): header check, streaming rows, located faults."""

from __future__ import annotations

import csv
import difflib
import io
from collections.abc import Iterable, Iterator

from adapters.base import AdapterContext, Problem, check_size, strip_control
from adapters.paris.columns import COLUMN_NAMES, COLUMNS, MAX_LINE_BYTES, REQUIRED_COLUMNS
from adapters.paris.mapping import DEFAULT_SOURCE, Locate, Translator, collect
from schemas.events import Event

__all__ = ["ParisCsvAdapter"]

_BOM = "\ufeff"


class ParisCsvAdapter:
    """Paris CSV exports: one header line, then one record a row (case status or interview).

    Rows are numbered from 1 for the first record after the header, as records, not lines:
    a quoted cell may span lines. Blank rows are counted and skipped, so row N is line N+1
    of the file whenever no cell holds a line break.
    """

    name = "paris-csv"
    #: A whole-file ``parse`` holds the file in memory; larger exports go through
    #: ``parse_stream``, which has no overall limit.
    max_bytes = 64 * 1024 * 1024
    default_source = DEFAULT_SOURCE

    def parse(self, raw: bytes, context: AdapterContext) -> list[Event]:
        """Translate a whole export.

        Raises:
            InputTooLarge: ``raw`` is over ``max_bytes``.
            AdapterError: listing every bad row, each with its row number and column.
        """
        check_size(self.name, raw, self.max_bytes)
        return collect(self.name, self.parse_stream(io.BytesIO(raw), context))

    def parse_stream(
        self, lines: Iterable[bytes], context: AdapterContext
    ) -> Iterator[Event | Problem]:
        """Translate an export line by line, holding one record at a time.

        Args:
            lines: the file's lines as bytes, each with its line ending (a binary file
                object will do).
            context: the sender and the time of translation.

        Yields:
            An event for each good row, a located problem for each fault. A bad header
            yields its problems and nothing else, since no row can then be read safely.
        """
        source = _TextLines(lines)
        reader = csv.reader(source, strict=True)
        try:
            header = next(reader, None)
        except csv.Error as exc:
            yield Problem("header", f"not valid CSV: {exc}")
            return
        if source.too_long:
            yield Problem("header", f"is longer than {MAX_LINE_BYTES} bytes")
            return
        columns, problems = _check_header(header)
        if problems:
            yield from problems
            return
        translate = Translator(context).translate
        width = len(columns)
        row = 0
        while True:
            row += 1
            try:
                cells = next(reader, None)
            except csv.Error as exc:
                source.too_long = False
                yield Problem(f"row {row}", f"not valid CSV: {exc}")
                continue
            if cells is None:
                return
            if source.too_long:
                source.too_long = False
                yield Problem(f"row {row}", f"has a line longer than {MAX_LINE_BYTES} bytes")
                continue
            if not cells:
                continue
            if len(cells) != width:
                yield Problem(f"row {row}", f"has {len(cells)} cells; the header has {width}")
                continue
            result = translate(dict(zip(columns, cells, strict=True)), _locator(row))
            if isinstance(result, Event):
                yield result
            else:
                yield from result


def _locator(row: int) -> Locate:
    def locate(column: str | None) -> str:
        return f"row {row}, column {column}" if column else f"row {row}"

    return locate


#: Blank lines as read, and the text each stands for (what decoding and cleaning give).
_BLANK_LINES = {b"\n": "\n", b"\r\n": "\r\n", b"\r": "\r"}


class _TextLines:
    """Decoded, cleaned text lines: BOM dropped, control characters removed.

    Bytes that are not UTF-8 become U+FFFD, which the row's check then names by column.
    A line over the length limit is not decoded: an empty line stands in for it and
    ``too_long`` is set, for the row being read to be refused.
    """

    def __init__(self, lines: Iterable[bytes]) -> None:
        self._lines = iter(lines)
        self._first = True
        self.too_long = False

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        blank = _BLANK_LINES.get(line)
        if blank is not None:
            # Nothing to decode or clean: a flood of blank lines costs no more than reading.
            self._first = False
            return blank
        if len(line) > MAX_LINE_BYTES:
            self.too_long = True
            self._first = False
            return "\n"
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            text = line.decode("utf-8", "replace")
        if self._first:
            self._first = False
            text = text.removeprefix(_BOM)
        return strip_control(text)


def _check_header(header: list[str] | None) -> tuple[list[str], list[Problem]]:
    if not header:
        return [], [Problem("header", "is missing: the first line must name the columns")]
    if len(header) > len(COLUMNS):
        return [], [Problem("header", f"has {len(header)} columns; at most {len(COLUMNS)} exist")]
    columns = [h.strip().lower() for h in header]
    problems = []
    seen: set[str] = set()
    for position, name in enumerate(columns, start=1):
        if name in COLUMN_NAMES:
            if name in seen:
                problems.append(Problem(f"header, column {name}", "appears more than once"))
            seen.add(name)
            continue
        # The unknown name is not echoed: with the header left out, it would be a
        # child's data.
        close = difflib.get_close_matches(name, COLUMN_NAMES, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        problems.append(
            Problem(f"header, column {position}", f"is not a Paris export column{hint}")
        )
    for name in REQUIRED_COLUMNS:
        if name not in seen:
            problems.append(Problem(f"header, column {name}", "required column is missing"))
    return columns, problems
