"""The Paris XML export (adapter ``paris-xml``): a defused streaming parse, located faults."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from xml.etree.ElementTree import ParseError
from xml.parsers.expat import ErrorString, XMLParserType

from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import DefusedXMLParser

from adapters.base import AdapterContext, Problem, check_size, strip_control
from adapters.paris.columns import COLUMNS, GROUPS, MAX_CELL_CHARS
from adapters.paris.mapping import DEFAULT_SOURCE, Translator, collect
from schemas.events import Event

__all__ = ["MAX_DEPTH", "RECORD", "ROOT", "ParisXmlAdapter"]

ROOT = "paris-export"
RECORD = "record"
#: Deeper nesting than this is refused: the export is four levels deep.
MAX_DEPTH = 16
#: Problems listed per record; further ones are summarised in one line.
_MAX_RECORD_PROBLEMS = 20
_CHUNK = 64 * 1024
_ROOT_ATTRIBUTES = frozenset({"version", "exported_at"})
_GROUP_OF = {c.name: c.group for c in COLUMNS}
_GROUPS = frozenset(GROUPS)


class ParisXmlAdapter:
    """Paris XML exports: ``<paris-export>`` holding ``<record>`` elements, one per record.

    Parsed by expat through defusedxml with DTDs, entity declarations and external
    references all refused, and with no element tree built: each record's values are
    gathered as the parser meets them and translated as soon as the record closes.
    """

    name = "paris-xml"
    max_bytes = 64 * 1024 * 1024
    default_source = DEFAULT_SOURCE

    def parse(self, raw: bytes, context: AdapterContext) -> list[Event]:
        """Translate a whole export.

        Raises:
            InputTooLarge: ``raw`` is over ``max_bytes``.
            AdapterError: listing every bad record, each with its element path and line.
        """
        check_size(self.name, raw, self.max_bytes)
        view = memoryview(raw)
        chunks = (view[i : i + _CHUNK] for i in range(0, len(raw), _CHUNK))
        return collect(self.name, self.parse_stream(chunks, context))

    def parse_stream(
        self, lines: Iterable[bytes | memoryview], context: AdapterContext
    ) -> Iterator[Event | Problem]:
        """Translate an export from successive pieces of it (lines or any chunks).

        Yields:
            An event for each good record and located problems for each bad one. A
            document that stops being well-formed XML (or declares a DTD) yields one
            problem at the place it failed, after the records that came before it.
        """
        target = _Collector()
        parser = DefusedXMLParser(
            target=target, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
        expat = parser.parser
        target.expat = expat
        translator = Translator(context)
        fatal: Problem | None = None
        try:
            for piece in lines:
                parser.feed(piece)
                yield from _drain(target, translator)
            parser.close()
        except ParseError as exc:
            line, col = exc.position
            fatal = Problem(f"line {line}, column {col}", f"not well-formed XML: {_reason(exc)}")
        except DTDForbidden:
            fatal = _at(
                expat,
                "a document type declaration (DTD) is refused: DTDs allow entity "
                "expansion (XML bombs) and external entities",
            )
        except EntitiesForbidden:
            fatal = _at(expat, "entity declarations are refused")
        except ExternalReferenceForbidden:
            fatal = _at(expat, "external entity references are refused")
        except (LookupError, UnicodeError):
            fatal = _at(expat, "the declared character encoding cannot be read")
        except ValueError as exc:
            # pyexpat refuses a declared multi-byte encoding (UTF-7, UTF-32, Shift_JIS, ...)
            # with a bare ValueError; any other ValueError is a fault of ours, not the input's.
            if "encoding" not in str(exc):
                raise
            fatal = _at(expat, "the declared character encoding cannot be read")
        except _TooDeep:
            fatal = _at(expat, f"elements nest deeper than {MAX_DEPTH} levels")
        yield from _drain(target, translator)
        if fatal is not None:
            yield fatal


def _reason(exc: ParseError) -> str:
    try:
        return ErrorString(exc.code) or "syntax error"
    except (TypeError, ValueError):
        return "syntax error"


def _at(expat: XMLParserType, reason: str) -> Problem:
    return Problem(f"line {expat.CurrentLineNumber}, column {expat.CurrentColumnNumber}", reason)


def _drain(target: _Collector, translator: Translator) -> Iterator[Event | Problem]:
    ready = target.ready
    while ready:
        item = ready.popleft()
        if isinstance(item, Problem):
            yield item
            continue
        result = translator.translate(item.values, item.locate)
        if item.problems:
            # Structural faults first, then whatever the values themselves got wrong.
            yield from item.problems
            if not isinstance(result, Event):
                yield from result
        elif isinstance(result, Event):
            yield result
        else:
            yield from result


class _TooDeep(Exception):
    """Raised from the parser callback to stop a document nested beyond MAX_DEPTH."""


@dataclass(slots=True)
class _Record:
    """One ``<record>`` as gathered: column texts, the line of each, and structural faults."""

    index: int
    line: int
    values: dict[str, str] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    stray_text: bool = False

    @property
    def path(self) -> str:
        return f"/{ROOT}/{RECORD}[{self.index}]"

    def locate(self, column: str | None) -> str:
        if column is None:
            return f"{self.path} (line {self.line})"
        group = _GROUP_OF.get(column, RECORD)
        inner = column if group == RECORD else f"{group}/{column}"
        return f"{self.path}/{inner} (line {self.lines.get(column, self.line)})"

    def fail(self, where: str, reason: str) -> None:
        if len(self.problems) < _MAX_RECORD_PROBLEMS:
            self.problems.append(Problem(where, reason))
        elif len(self.problems) == _MAX_RECORD_PROBLEMS:
            self.problems.append(Problem(self.locate(None), "further problems are not listed"))


class _Collector:
    """The parser's target: follows the element path and gathers each record's leaf texts.

    Nothing is kept once a record has been handed on, so memory is one record's worth
    however long the document.
    """

    def __init__(self) -> None:
        self.expat: XMLParserType | None = None
        self.ready: deque[_Record | Problem] = deque()
        self._names: list[str] = []  # open element names, root first
        self._skip_from: int | None = None  # depth of an ignored subtree's top
        self._record: _Record | None = None
        self._records = 0
        self._group: str | None = None
        self._leaf: str | None = None
        self._leaf_line = 0
        self._text: list[str] = []
        self._text_len = 0

    def _line(self) -> int:
        return self.expat.CurrentLineNumber if self.expat is not None else 0

    def _where(self, tag: str, line: int) -> str:
        if self._record is None:
            return f"/{'/'.join([*self._names, tag])} (line {line})"
        inner = "/".join([*self._names[2:], tag])
        return f"{self._record.path}/{inner} (line {line})"

    def _record_path(self) -> str:
        return self._record.path if self._record is not None else f"/{ROOT}"

    def _fail(self, where: str, reason: str) -> None:
        if self._record is not None:
            self._record.fail(where, reason)
        else:
            self.ready.append(Problem(where, reason))

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        depth = len(self._names)
        if depth >= MAX_DEPTH:
            raise _TooDeep
        if self._skip_from is None:
            self._open(tag, attrib, depth)
        self._names.append(tag)

    def _open(self, tag: str, attrib: dict[str, str], depth: int) -> None:
        line = self._line()
        if depth == 0:
            if tag != ROOT:
                self._fail(self._where(tag, line), f"the root element must be <{ROOT}>")
                self._skip_from = depth
                return
            if set(attrib) - _ROOT_ATTRIBUTES:
                self._fail(self._where(tag, line), "has an attribute the export does not use")
            if attrib.get("version", "1") != "1":
                self._fail(self._where(tag, line), "version must be 1")
            return
        if depth == 1:
            if tag != RECORD:
                self._fail(self._where(tag, line), f"is not an element of <{ROOT}>")
                self._skip_from = depth
                return
            self._records += 1
            self._record = _Record(self._records, line)
        elif self._leaf is not None:
            self._fail(self._where(tag, line), f"<{self._leaf}> must hold text only")
            self._skip_from = depth
            return
        elif depth == 2 and tag in _GROUPS:
            self._group = tag
        elif (self._group or RECORD) == _GROUP_OF.get(tag):
            self._leaf, self._leaf_line = tag, line
            self._text, self._text_len = [], 0
        else:
            home = _GROUP_OF.get(tag)
            reason = (
                f"belongs in <{home}>"
                if home is not None
                else "is not an element of the Paris export"
            )
            self._fail(self._where(tag, line), reason)
            self._skip_from = depth
            return
        if attrib:
            where = self._where(tag, line) if depth > 1 else f"{self._record_path()} (line {line})"
            self._fail(where, "attributes are not used in records")

    def data(self, text: str) -> None:
        if self._skip_from is not None:
            return
        if self._leaf is not None:
            if self._text_len <= MAX_CELL_CHARS:
                self._text.append(text)
            self._text_len += len(text)
            return
        record = self._record
        if record is not None and not record.stray_text and text.strip():
            record.stray_text = True
            inner = "/".join(self._names[2:])
            path = f"{record.path}/{inner}" if inner else record.path
            record.fail(f"{path} (line {self._line()})", "holds text outside a column element")

    def end(self, tag: str) -> None:
        self._names.pop()
        depth = len(self._names)
        if self._skip_from is not None:
            if depth == self._skip_from:
                self._skip_from = None
            return
        if self._leaf is not None and tag == self._leaf:
            self._close_leaf()
        elif depth == 2 and tag == self._group:
            self._group = None
        elif depth == 1 and self._record is not None:
            self.ready.append(self._record)
            self._record = None

    def _close_leaf(self) -> None:
        record, name = self._record, self._leaf
        self._leaf = None
        if record is None or name is None:
            return
        record.lines.setdefault(name, self._leaf_line)
        if name in record.values:
            record.fail(record.locate(name), "appears more than once")
        elif self._text_len > MAX_CELL_CHARS:
            record.fail(record.locate(name), f"is longer than {MAX_CELL_CHARS} characters")
        else:
            record.values[name] = strip_control("".join(self._text))
