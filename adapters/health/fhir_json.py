"""Reading FHIR R4 JSON: typed access that records located problems, and reference lookup.

Every value is read through a ``Node`` that knows its FHIR path
(``Bundle.entry[2].resource.identifier[0].value``), so a wrong type or a missing
element becomes a ``Problem`` at that path instead of an exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from adapters.base import Problem, london_to_utc, strip_control

__all__ = ["BundleIndex", "Node", "Resource", "parse_date", "parse_datetime"]

_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_DATETIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2})?$"
)
_HISTORY = re.compile(r"/_history/[^/]*$")


class Node:
    """A JSON object at a FHIR path, with readers that report problems rather than raise."""

    __slots__ = ("data", "path", "problems")

    def __init__(self, data: dict[str, Any], path: str, problems: list[Problem]) -> None:
        self.data = data
        self.path = path
        self.problems = problems

    def at(self, key: str) -> str:
        """The path of a child element."""
        return f"{self.path}.{key}"

    def problem(self, key: str | None, reason: str) -> None:
        """Record a problem at this node or at one of its elements."""
        self.problems.append(Problem(self.at(key) if key else self.path, reason))

    def string(self, key: str, *, required: bool = False) -> str | None:
        """A string element, trimmed and without control characters; None when absent."""
        value = self.data.get(key)
        if value is None:
            if required:
                self.problem(key, "is required")
            return None
        if not isinstance(value, str):
            self.problem(key, "must be a string")
            return None
        text = strip_control(value).strip()
        if not text and required:
            self.problem(key, "is required")
        return text or None

    def obj(self, key: str, *, required: bool = False) -> Node | None:
        """A child object; None when absent or not an object (which is a problem)."""
        value = self.data.get(key)
        if value is None:
            if required:
                self.problem(key, "is required")
            return None
        if not isinstance(value, dict):
            self.problem(key, "must be an object")
            return None
        return Node(value, self.at(key), self.problems)

    def objects(self, key: str) -> list[Node]:
        """The objects of an array element; wrong types are problems and are skipped."""
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.problem(key, "must be an array")
            return []
        nodes = []
        for i, item in enumerate(value):
            if isinstance(item, dict):
                nodes.append(Node(item, f"{self.path}.{key}[{i}]", self.problems))
            else:
                self.problems.append(Problem(f"{self.path}.{key}[{i}]", "must be an object"))
        return nodes

    def strings(self, key: str) -> list[tuple[str, str]]:
        """(path, text) for each string of an array element."""
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.problem(key, "must be an array")
            return []
        out = []
        for i, item in enumerate(value):
            where = f"{self.path}.{key}[{i}]"
            if isinstance(item, str):
                text = strip_control(item).strip()
                if text:
                    out.append((where, text))
            else:
                self.problems.append(Problem(where, "must be a string"))
        return out

    def datetime(self, key: str, *, required: bool = False) -> datetime | None:
        """A FHIR dateTime / instant as UTC; a time without offset is London wall time."""
        text = self.string(key, required=required)
        if text is None:
            return None
        value = parse_datetime(text)
        if value is None:
            self.problem(key, "not a valid dateTime with a time (YYYY-MM-DDThh:mm:ss+zz:zz)")
        return value


def parse_datetime(text: str) -> datetime | None:
    """A FHIR dateTime with a time part as a UTC instant, or None when it is not one."""
    if not _DATETIME.match(text):
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value.astimezone(UTC) if value.tzinfo else london_to_utc(value)


def parse_date(text: str) -> date | None:
    """A full FHIR date (``YYYY-MM-DD``), or None."""
    match = _DATE.match(text)
    if not match:
        return None
    try:
        return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        return None


@dataclass(eq=False, slots=True)
class Resource:
    """One resource found in the input, with the contained resources it carries."""

    kind: str
    node: Node
    id: str | None
    full_url: str | None = None
    contained: dict[str, Resource] = field(default_factory=dict)
    #: The resource this one is contained in, if any.
    parent: Resource | None = None


class BundleIndex:
    """Every resource of the input by ``fullUrl`` and by ``Type/id``, to resolve references."""

    def __init__(self) -> None:
        self.resources: list[Resource] = []
        self._by_key: dict[str, Resource] = {}

    def add(self, node: Node, full_url: str | None) -> Resource | None:
        """Index the resource at ``node``; None (with a problem) when it has no type."""
        kind = node.string("resourceType", required=True)
        if kind is None:
            return None
        rid = node.string("id")
        resource = Resource(kind, node, rid, full_url)
        for contained in node.objects("contained"):
            inner_kind = contained.string("resourceType", required=True)
            inner_id = contained.string("id")
            if inner_kind and inner_id:
                inner = Resource(inner_kind, contained, inner_id, parent=resource)
                resource.contained[f"#{inner_id}"] = inner
                self.resources.append(inner)
        self.resources.append(resource)
        if full_url:
            self._by_key.setdefault(full_url, resource)
        if rid:
            self._by_key.setdefault(f"{kind}/{rid}", resource)
        return resource

    def of_kind(self, kind: str) -> list[Resource]:
        """Every indexed resource of one type, in input order."""
        return [r for r in self.resources if r.kind == kind]

    def resolve(self, reference: str, within: Resource | None = None) -> Resource | None:
        """The resource a ``Reference.reference`` names, or None when it is not in the input."""
        if reference.startswith("#"):
            # A local reference names a resource contained in the same container.
            root = (within.parent or within) if within else None
            return root.contained.get(reference) if root else None
        reference = _HISTORY.sub("", reference)
        found = self._by_key.get(reference)
        if found is None and "://" in reference:
            parts = reference.rstrip("/").split("/")
            if len(parts) >= 2:
                found = self._by_key.get(f"{parts[-2]}/{parts[-1]}")
        return found
