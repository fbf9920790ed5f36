"""Located problems in an agreement file, as the loader and ``policy check`` report them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["Finding", "Severity"]


class Severity(StrEnum):
    """An error makes the agreement wrong; a warning is worth a reader's second look."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem, where it is (YAML line, and which party or rule) and a stable code."""

    severity: Severity
    #: A stable short code, e.g. ``unknown-field``, for tests and suppressions.
    code: str
    message: str
    #: 1-based line in the YAML file, when known.
    line: int | None
    #: What the finding is about: ``rule <id>``, ``party <id>``, ``field set <name>``, ...
    where: str = "agreement"

    def format(self, source: str) -> str:
        """One line such as ``agreement.yaml:42 rule cse-l3: field body.foo is not ... [code]``."""
        place = f"{source}:{self.line}" if self.line is not None else source
        level = "warning: " if self.severity is Severity.WARNING else ""
        return f"{place} {self.where}: {level}{self.message} [{self.code}]"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form."""
        return {
            "severity": self.severity.value,
            "code": self.code,
            "message": self.message,
            "line": self.line,
            "where": self.where,
        }
