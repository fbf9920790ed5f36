"""Field paths into the canonical event: the schema's catalogue, allow-lists and minimisation.

A field path is dotted, e.g. ``subject.nhs_number`` or ``body.locations.kind``; a path
through a list of models applies to every element. ``X.*`` allows the whole group ``X``.
A bare path that names a group (``subject.home_address``) allows nothing: the agreement has
to say which of its fields, or ``.*`` for all of them.
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Iterator, Mapping, Set
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Annotated, Any, Final, Union, get_args, get_origin

from pydantic import BaseModel

from schemas.events import Event, EventMetadata, EventType
from schemas.person import Child

__all__ = [
    "ALWAYS_INCLUDED",
    "AllowTree",
    "FieldCatalogue",
    "compile_allow_list",
    "field_catalogue",
    "is_allowed",
    "leaf_paths",
    "minimise",
    "minimise_with",
]

#: Fields every disclosure carries whatever the rule says: the recipient needs them to
#: route, de-duplicate and read the message, and none of them is personal data.
ALWAYS_INCLUDED: Final = frozenset(
    {"metadata.event_id", "metadata.schema_version", "metadata.classification", "body.type"}
)

WILDCARD: Final = "*"


# --------------------------------------------------------------------------- catalogue


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models a field's annotation holds (through Optional, unions, tuples)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = get_origin(annotation)
    if origin is Annotated:
        return _models_in(get_args(annotation)[0])
    if origin in (Union, types.UnionType, tuple, list):
        found: list[type[BaseModel]] = []
        for arg in get_args(annotation):
            found.extend(_models_in(arg))
        return found
    return []


def _walk(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, bool]]:
    """Every path under ``model``, paired with whether it is a group (a model or list of them)."""
    for name, info in model.model_fields.items():
        path = f"{prefix}.{info.serialization_alias or name}"
        nested = _models_in(info.annotation)
        yield path, bool(nested)
        for sub in nested:
            yield from _walk(sub, path)


def _body_models() -> dict[EventType, type[BaseModel]]:
    models = _models_in(Event.model_fields["body"].annotation)
    return {EventType(m.model_fields["type"].default): m for m in models}


@dataclass(frozen=True, slots=True)
class FieldCatalogue:
    """Every field path of the canonical event, by body type, and whether each is a group."""

    #: For each event type: path -> True when the path names a group of fields.
    by_type: Mapping[EventType, Mapping[str, bool]]

    def types_with(self, path: str) -> frozenset[EventType]:
        """The event types whose schema has ``path`` (a field or a group)."""
        return frozenset(t for t, paths in self.by_type.items() if path in paths)

    def is_group(self, path: str, event_types: Iterable[EventType] | None = None) -> bool | None:
        """True for a group, False for a single field, None when none of the types has it."""
        kinds = {
            self.by_type[t][path]
            for t in (self.by_type if event_types is None else event_types)
            if path in self.by_type[t]
        }
        return None if not kinds else (True in kinds)

    def paths(self, event_type: EventType) -> frozenset[str]:
        """Every path (fields and groups) an event of this type can have."""
        return frozenset(self.by_type[event_type])

    def problem(self, path: str, event_types: Iterable[EventType] | None = None) -> str | None:
        """Why ``path`` cannot be used in an allow-list for these event types, or None if it can.

        Args:
            path: a field path as written in the agreement (may end in ``.*``).
            event_types: the types a rule applies to; None for every type.
        """
        wanted = list(self.by_type if event_types is None else event_types)
        wildcard = path.endswith(".*")
        base = path[:-2] if wildcard else path
        if not self.types_with(base):
            return f"field {base} is not in the canonical schema"
        kind = self.is_group(base, wanted)
        if kind is None:
            names = ", ".join(sorted(wanted))
            return f"field {base} is not in the schema of {names} events"
        if wildcard and not kind:
            return f"field {base} is a single field; write it without .*"
        if not wildcard and kind:
            return f"field {base} is a group of fields; name the ones needed or write {base}.*"
        return None


@cache
def field_catalogue() -> FieldCatalogue:
    """The catalogue of the canonical schema (built once from the pydantic models)."""
    common = {"metadata": True, "subject": True, "body": True}
    common.update(_walk(EventMetadata, "metadata"))
    common.update(_walk(Child, "subject"))
    by_type: dict[EventType, Mapping[str, bool]] = {}
    for event_type, model in _body_models().items():
        paths = dict(common)
        paths.update(_walk(model, "body"))
        by_type[event_type] = paths
    return FieldCatalogue(by_type=by_type)


# --------------------------------------------------------------------------- allow-lists

#: A compiled allow-list: key -> nested tree, or a marker for "this field" / "all of it".
AllowTree = dict[str, Any]

_FIELD: Final = object()  # the value here, when it is a single field (not a group)
_ALL: Final = object()  # everything under here
_MISSING: Final = object()  # absent from the input, or nothing allowed is left


def compile_allow_list(paths: Iterable[str]) -> AllowTree:
    """Compile field paths into a tree that :func:`minimise_with` walks.

    Compile once per rule and recipient; the tree is then reused for every event.
    """
    tree: AllowTree = {}
    for path in paths:
        parts = path.split(".")
        wildcard = parts[-1] == WILDCARD
        if wildcard:
            parts = parts[:-1]
        if not parts:
            continue
        node = tree
        for part in parts[:-1]:
            child = node.get(part)
            if child is _ALL:
                break
            if not isinstance(child, dict):
                # A group named bare allows nothing by itself: its named fields take over.
                child = node[part] = {}
            node = child
        else:
            last = parts[-1]
            if wildcard:
                node[last] = _ALL
            elif last not in node:
                node[last] = _FIELD
    return tree


def _copy(value: Any) -> Any:
    # A JSON document: dicts, lists and immutable scalars. Faster than copy.deepcopy.
    if type(value) is dict:
        return {k: _copy(v) for k, v in value.items()}
    if type(value) is list:
        return [_copy(v) for v in value]
    return value


def _field_value(value: Any) -> Any:
    """The value of a single field, or _MISSING when the path actually names a group."""
    kind = type(value)
    if kind is dict:
        return _MISSING  # a group named without .*: withheld
    if kind is list:
        if any(type(v) is dict or type(v) is list for v in value):
            return _MISSING
        return list(value)
    return value


def _group_value(tree: AllowTree, value: Any) -> Any:
    """What is allowed of a group (or list of groups); _MISSING when nothing is left.

    Keeping empty groups or empty list items would still tell the recipient how many
    withheld items there were. None or a scalar where a group belongs has nothing to keep.
    """
    kind = type(value)
    if kind is dict:
        kept = _apply(tree, value)
        return kept if kept else _MISSING
    if kind is list:
        items = [kept for v in value if type(v) is dict and (kept := _apply(tree, v))]
        return items if items else _MISSING
    return _MISSING


def _apply(tree: AllowTree, data: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, sub in tree.items():
        value = data.get(key, _MISSING)
        if value is _MISSING:
            continue
        if sub is _FIELD:
            value = _field_value(value)
        elif sub is _ALL:
            value = _copy(value)
        else:
            value = _group_value(sub, value)
        if value is not _MISSING:
            out[key] = value
    return out


def minimise_with(event_json: Mapping[str, Any], tree: AllowTree) -> dict[str, Any]:
    """Keep only what a compiled allow-list allows. The input is not modified.

    Args:
        event_json: the canonical event as JSON (``Event.model_dump(mode="json")``).
        tree: from :func:`compile_allow_list`.

    Returns:
        A new dict with only the allowed fields present in the input. A group that is null,
        or in which nothing allowed is present, is left out; so is an item of a list of
        groups in which nothing allowed is present.
    """
    return _apply(tree, event_json)


@lru_cache(maxsize=1024)
def _compiled(paths: frozenset[str]) -> AllowTree:
    return compile_allow_list(paths)


def minimise(event_json: Mapping[str, Any], allowed: Set[str]) -> dict[str, Any]:
    """Keep only the ``allowed`` field paths of an event (see the module docstring).

    The compiled tree is cached per distinct allow-list, so repeated calls are cheap.

    Args:
        event_json: the canonical event as JSON.
        allowed: field paths; nothing else is added (not even :data:`ALWAYS_INCLUDED`).

    Returns:
        A new dict with only the allowed fields.
    """
    return minimise_with(event_json, _compiled(frozenset(allowed)))


def is_allowed(path: str, allowed: Set[str]) -> bool:
    """Whether the value at ``path`` is covered by ``allowed``: named exactly, or within a
    group allowed with ``.*`` (``subject.*`` covers ``subject`` itself, even when null)."""
    if path in allowed or f"{path}.*" in allowed:
        return True
    parts = path.split(".")
    return any(".".join(parts[:i]) + ".*" in allowed for i in range(1, len(parts)))


def leaf_paths(document: Mapping[str, Any], prefix: str = "") -> set[str]:
    """The paths of every single field present in a (minimised) event document.

    List elements share their list's path: ``body.locations.kind`` for every location.
    """
    found: set[str] = set()
    for key, value in document.items():
        path = f"{prefix}{key}"
        if type(value) is dict:
            found |= leaf_paths(value, path + ".")
        elif type(value) is list and any(type(v) is dict for v in value):
            for item in value:
                if type(item) is dict:
                    found |= leaf_paths(item, path + ".")
        else:
            found.add(path)
    return found
