"""The FHIR R4 adapter: Bundles and resources (Patient, Encounter, Flag) into attendance events."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from adapters.base import AdapterContext, AdapterError, Problem, check_size
from adapters.health.canonical import (
    AttendanceFields,
    PatientFields,
    attendance_event,
    build_child,
)
from adapters.health.fhir_json import BundleIndex, Node, Resource, parse_date
from adapters.health.mapping import (
    FHIR_SEX,
    flag_for_code,
    flag_for_text,
    is_ons_code,
    ordered_flags,
    setting_for_service,
)
from schemas.events import AttendanceSetting, Event, SafeguardingFlag
from schemas.person import Child

__all__ = [
    "BUNDLE_TYPES",
    "MAX_ENTRIES",
    "NHS_NUMBER_SYSTEM",
    "FhirAdapter",
]

#: UK Core's identifier system for the NHS number.
NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
#: Bundle types accepted; a message Bundle must start with its MessageHeader.
BUNDLE_TYPES = frozenset({"message", "collection", "transaction", "batch", "searchset"})
#: A Bundle with more entries is refused: no partner sends that many attendances at once.
MAX_ENTRIES = 1000
#: Encounter statuses that describe no attendance and are skipped.
_SKIPPED_STATUSES = frozenset({"entered-in-error", "cancelled"})
_MAX_PROBLEMS = 50


class FhirAdapter:
    """Translate FHIR R4 JSON into one attendance event per Encounter.

    Accepts a message Bundle (MessageHeader first), a collection, transaction, batch or
    searchset Bundle, or a single Encounter (its Patient contained or named by NHS
    number). Flags attach to the Encounter they name, else to every Encounter of their
    Patient. Input without an Encounter is refused: an attendance needs one.
    """

    name: ClassVar[str] = "fhir"
    max_bytes: ClassVar[int] = 512 * 1024
    default_source: ClassVar[str] = "fhft-hospital"

    def parse(self, raw: bytes, context: AdapterContext) -> list[Event]:
        """Translate one FHIR JSON document.

        Raises:
            AdapterError: with every problem found, located by FHIR path.
        """
        check_size(self.name, raw, self.max_bytes)
        try:
            document = json.loads(raw)
        except (ValueError, RecursionError):
            raise AdapterError(self.name, [Problem("message", "not valid JSON")]) from None
        problems: list[Problem] = []
        try:
            events = _Translation(context, problems).run(document)
        except (ValueError, TypeError, KeyError, IndexError, RecursionError) as exc:
            raise AdapterError(
                self.name, [Problem("message", "not a readable FHIR resource")]
            ) from exc
        if problems:
            if len(problems) > _MAX_PROBLEMS:
                rest = len(problems) - _MAX_PROBLEMS
                problems = [*problems[:_MAX_PROBLEMS], Problem("message", f"{rest} more problems")]
            raise AdapterError(self.name, problems)
        return events


@dataclass(slots=True)
class _Header:
    """What the Bundle (and its MessageHeader) says about every event in it."""

    key: str = ""
    system: str = "fhir"
    sender_site: str | None = None
    timestamp: datetime | None = None


@dataclass(slots=True)
class _FlagLinks:
    by_encounter: dict[int, list[SafeguardingFlag]] = field(
        default_factory=lambda: defaultdict(list)
    )
    by_patient: dict[int, list[SafeguardingFlag]] = field(default_factory=lambda: defaultdict(list))
    by_nhs: dict[str, list[SafeguardingFlag]] = field(default_factory=lambda: defaultdict(list))


class _Translation:
    """One input's translation: the index, the problems, and the children built so far."""

    def __init__(self, context: AdapterContext, problems: list[Problem]) -> None:
        self.context = context
        self.problems = problems
        self.index = BundleIndex()
        self.header = _Header()
        self.children: dict[int, tuple[Child | None, str | None]] = {}

    def run(self, document: Any) -> list[Event]:
        if not isinstance(document, dict):
            self.problems.append(Problem("message", "must be a JSON object (a FHIR resource)"))
            return []
        kind = document.get("resourceType")
        if not isinstance(kind, str) or not kind:
            self.problems.append(Problem("resourceType", "is required"))
            return []
        if kind == "Bundle":
            root = Node(document, "Bundle", self.problems)
            self._bundle(root)
        else:
            root = Node(document, kind, self.problems)
            self.index.add(root, None)
        if self.problems:
            return []
        encounters = self.index.of_kind("Encounter")
        if not encounters:
            self.problems.append(
                Problem(
                    root.at("entry") if kind == "Bundle" else "resourceType",
                    "no Encounter: an attendance needs one (Flags alone are not translated)",
                )
            )
            return []
        links = self._flags()
        events = []
        for encounter in encounters:
            event = self._encounter(encounter, links)
            if event is not None:
                events.append(event)
        return [] if self.problems else events

    # -- the Bundle -------------------------------------------------------------------

    def _bundle(self, root: Node) -> None:
        kind = root.string("type", required=True)
        if kind is not None and kind not in BUNDLE_TYPES:
            root.problem("type", "must be message, collection, transaction, batch or searchset")
            return
        raw_entries = root.data.get("entry")
        if isinstance(raw_entries, list) and len(raw_entries) > MAX_ENTRIES:
            root.problem("entry", f"more than {MAX_ENTRIES} entries")
            return
        entries = root.objects("entry")
        identifier = root.obj("identifier")
        self.header.key = (identifier.string("value") if identifier else None) or (
            root.string("id") or ""
        )
        self.header.timestamp = root.datetime("timestamp")
        for position, entry in enumerate(entries):
            resource = entry.obj("resource", required=not entry.data.get("request"))
            if resource is None:
                continue
            indexed = self.index.add(resource, entry.string("fullUrl"))
            if kind == "message" and position == 0 and indexed and indexed.kind != "MessageHeader":
                resource.problem(
                    "resourceType", "a message Bundle must start with its MessageHeader"
                )
        if kind == "message":
            if not entries:
                root.problem("entry", "a message Bundle must start with its MessageHeader")
            else:
                self._message_header(entries[0])

    def _message_header(self, entry: Node) -> None:
        resource = entry.obj("resource")
        if resource is None or resource.data.get("resourceType") != "MessageHeader":
            return
        self.header.key = self.header.key or resource.string("id") or ""
        source = resource.obj("source")
        if source is not None:
            self.header.system = source.string("name") or source.string("endpoint") or "fhir"
        sender = resource.obj("sender")
        if sender is not None:
            self.header.sender_site = self._site_of(sender, None, "Organization")

    # -- Flags ------------------------------------------------------------------------

    def _flags(self) -> _FlagLinks:
        links = _FlagLinks()
        for resource in self.index.of_kind("Flag"):
            node = resource.node
            status = node.string("status", required=True)
            code = node.obj("code", required=True)
            if status != "active" or code is None:
                continue  # inactive or entered-in-error: not in force at the attendance
            flag = _flag_from(code)
            if flag is None:
                continue  # a flag of another kind (allergy, access needs): not ours
            self._link_flag(resource, flag, links)
        return links

    def _link_flag(self, resource: Resource, flag: SafeguardingFlag, links: _FlagLinks) -> None:
        node = resource.node
        encounter_ref = node.obj("encounter")
        reference = encounter_ref.string("reference") if encounter_ref else None
        if encounter_ref is not None and reference:
            target = self.index.resolve(reference, resource)
            if target is None or target.kind != "Encounter":
                encounter_ref.problem("reference", "does not resolve to an Encounter in the input")
                return
            links.by_encounter[id(target)].append(flag)
            return
        subject = node.obj("subject", required=True)
        if subject is None:
            return
        reference = subject.string("reference")
        if reference:
            patient = self.index.resolve(reference, resource)
            if patient is None or patient.kind != "Patient":
                subject.problem("reference", "does not resolve to a Patient in the input")
                return
            links.by_patient[id(patient)].append(flag)
            return
        nhs = _nhs_identifier(subject.obj("identifier"))
        if nhs is None:
            subject.problem(None, "needs a reference or an NHS number identifier")
            return
        links.by_nhs[nhs].append(flag)

    # -- Encounters ---------------------------------------------------------------------

    def _encounter(self, resource: Resource, links: _FlagLinks) -> Event | None:
        node = resource.node
        found = len(self.problems)
        status = node.string("status", required=True)
        if status in _SKIPPED_STATUSES:
            return None
        setting = self._setting(node)
        period = node.obj("period", required=True)
        arrived = period.datetime("start", required=True) if period else None
        departed = period.datetime("end") if period else None
        reference, ref_where = self._attendance_ref(node)
        site = self._site(resource)
        child, nhs = self._subject(resource)
        recorded, recorded_where = self._recorded(node)
        if len(self.problems) > found or arrived is None or child is None or site is None:
            return None
        flags = list(links.by_encounter.get(id(resource), ()))
        patient = self._patient_of(resource)
        if patient is not None:
            flags.extend(links.by_patient.get(id(patient), ()))
        if nhs is not None:
            flags.extend(links.by_nhs.get(nhs, ()))
        encounter_key = reference or f"Encounter/{resource.id or node.path}"
        fields = AttendanceFields(
            where={
                "message": node.path,
                "site": node.at("location"),
                "arrived_at": node.at("period.start"),
                "departed_at": node.at("period.end"),
                "attendance_ref": ref_where,
                "reference": ref_where,
                "recorded_at": recorded_where,
                "system": "MessageHeader.source.name",
            },
            setting=setting,
            site=site,
            arrived_at=arrived,
            departed_at=departed,
            attendance_ref=reference,
            flags=ordered_flags(flags),
            system=self.header.system,
            reference=encounter_key,
            occurred_at=departed if status == "finished" and departed else arrived,
            recorded_at=recorded,
            native_ids=(self.header.key, encounter_key, self._version(node, status, departed)),
        )
        return attendance_event(FhirAdapter.name, child, fields, self.context, self.problems)

    def _setting(self, node: Node) -> AttendanceSetting:
        coding = node.obj("class", required=True)
        code = coding.string("code", required=True) if coding else None
        service_type = node.obj("serviceType")
        if service_type is not None:
            for item in service_type.objects("coding"):
                value = item.string("code")
                setting = setting_for_service(value) if value else None
                if setting is not None:
                    return setting
        if code is not None and code.upper() == "EMER":
            return AttendanceSetting.EMERGENCY_DEPARTMENT
        return AttendanceSetting.OTHER

    def _attendance_ref(self, node: Node) -> tuple[str | None, str]:
        for item in node.objects("identifier"):
            value = item.string("value")
            if value:
                return value, item.at("value")
        return None, node.at("identifier")

    def _recorded(self, node: Node) -> tuple[datetime | None, str]:
        meta = node.obj("meta")
        updated = meta.datetime("lastUpdated") if meta else None
        if updated is not None and meta is not None:
            return updated, meta.at("lastUpdated")
        return self.header.timestamp, "Bundle.timestamp"

    def _version(self, node: Node, status: str | None, departed: datetime | None) -> str:
        # What tells one version of an Encounter from the next when the Bundle has no id.
        meta = node.obj("meta")
        if meta is not None:
            version = meta.string("versionId") or meta.string("lastUpdated")
            if version:
                return version
        return f"{status}|{departed.isoformat() if departed else ''}"

    def _site(self, resource: Resource) -> str | None:
        node = resource.node
        for item in node.objects("location"):
            reference = item.obj("location")
            site = self._site_of(reference, resource, "Location") if reference else None
            if site:
                return site
        provider = node.obj("serviceProvider")
        site = self._site_of(provider, resource, "Organization") if provider else None
        site = site or self.header.sender_site
        if not site:
            node.problem("location", "a site is required (location, serviceProvider or sender)")
        return site

    def _site_of(self, reference: Node, within: Resource | None, kind: str) -> str | None:
        """An ODS code or name for a Reference to a Location or Organization."""
        identifier = reference.obj("identifier")
        value = identifier.string("value") if identifier else None
        if value:
            return value
        target_ref = reference.string("reference")
        target = self.index.resolve(target_ref, within) if target_ref else None
        if target is not None and target.kind == kind:
            for item in target.node.objects("identifier"):
                value = item.string("value")
                if value:
                    return value
            name = target.node.string("name")
            if name:
                return name
        return reference.string("display")

    # -- the child ------------------------------------------------------------------------

    def _patient_of(self, encounter: Resource) -> Resource | None:
        subject = encounter.node.data.get("subject")
        reference = subject.get("reference") if isinstance(subject, dict) else None
        if not isinstance(reference, str):
            return None
        found = self.index.resolve(reference.strip(), encounter)
        return found if found is not None and found.kind == "Patient" else None

    def _subject(self, encounter: Resource) -> tuple[Child | None, str | None]:
        """The child an Encounter is about, and the NHS number it was known by."""
        subject = encounter.node.obj("subject", required=True)
        if subject is None:
            return None, None
        reference = subject.string("reference")
        if reference:
            patient = self.index.resolve(reference, encounter)
            if patient is None or patient.kind != "Patient":
                subject.problem("reference", "does not resolve to a Patient in the input")
                return None, None
            if id(patient) not in self.children:
                self.children[id(patient)] = self._child(patient)
            return self.children[id(patient)]
        identifier = subject.obj("identifier")
        nhs = _nhs_identifier(identifier)
        if nhs is None:
            subject.problem(None, "needs a reference to a Patient or an NHS number identifier")
            return None, None
        fields = PatientFields(where={"nhs_number": subject.at("identifier.value")}, nhs_number=nhs)
        return build_child(fields, self.context.now, self.problems), nhs

    def _child(self, patient: Resource) -> tuple[Child | None, str | None]:
        node = patient.node
        fields = PatientFields(where={"patient": node.path})
        for item in node.objects("identifier"):
            if item.string("system") == NHS_NUMBER_SYSTEM:
                fields.nhs_number = item.string("value", required=True)
                fields.where["nhs_number"] = item.at("value")
                break
        _read_name(node, fields)
        birth = node.string("birthDate")
        if birth is not None:
            fields.date_of_birth = parse_date(birth)
            if fields.date_of_birth is None:
                node.problem("birthDate", "not a full date (YYYY-MM-DD)")
        fields.where["date_of_birth"] = node.at("birthDate")
        gender = node.string("gender")
        if gender is not None:
            fields.sex = FHIR_SEX.get(gender)
            if fields.sex is None:
                node.problem("gender", "must be male, female, other or unknown")
        fields.where["sex"] = node.at("gender")
        _read_address(node, fields)
        child = build_child(fields, self.context.now, self.problems)
        nhs = fields.nhs_number.replace(" ", "") if fields.nhs_number else None
        return child, nhs


def _preferred(
    nodes: list[Node], uses: tuple[str, ...], avoid: tuple[str, ...] = ()
) -> Node | None:
    for use in uses:
        for node in nodes:
            if node.data.get("use") == use:
                return node
    usable = [n for n in nodes if n.data.get("use") not in avoid]
    return usable[0] if usable else None


def _read_name(node: Node, fields: PatientFields) -> None:
    name = _preferred(node.objects("name"), ("official", "usual"), avoid=("old", "maiden"))
    if name is None:
        return
    fields.family_name = name.string("family")
    fields.where["family_name"] = name.at("family")
    given = name.strings("given")
    if given:
        fields.where["given_name"], fields.given_name = given[0]


def _read_address(node: Node, fields: PatientFields) -> None:
    address = _preferred(node.objects("address"), ("home",), avoid=("old",))
    if address is None:
        return
    lines = address.strings("line")
    fields.address_lines = tuple(text for _, text in lines)
    fields.where["address_lines"] = address.at("line")
    fields.town = address.string("city")
    fields.where["town"] = address.at("city")
    fields.postcode = address.string("postalCode")
    fields.where["postcode"] = address.at("postalCode")
    district = address.string("district")
    fields.local_authority = district if district and is_ons_code(district) else None
    fields.where["local_authority"] = address.at("district")


def _nhs_identifier(identifier: Node | None) -> str | None:
    if identifier is None or identifier.string("system") != NHS_NUMBER_SYSTEM:
        return None
    value = identifier.string("value")
    return value.replace(" ", "") if value else None


def _flag_from(code: Node) -> SafeguardingFlag | None:
    displays = []
    for coding in code.objects("coding"):
        value = coding.string("code")
        if value:
            flag = flag_for_code(value, coding.string("system"))
            if flag is not None:
                return flag
        display = coding.string("display")
        if display:
            displays.append(display)
    for text in (code.string("text"), *displays):
        flag = flag_for_text(text) if text else None
        if flag is not None:
            return flag
    return None
