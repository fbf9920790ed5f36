"""The AsyncAPI 3.0 document of the broker's AMQP side, built from its topology and schemas.

Channels: one per ingest routing key (partners publish native messages to the ``ingest``
exchange) and one per recipient queue (each recipient consumes sealed disclosures from
its own queue). Payload schemas come from ``schemas/json/`` and the police record schema
in ``docs/partners/``; being JSON Schema 2020-12 documents, their ``$defs`` are lifted into
``components.schemas`` and their references rewritten, so that the document is plain
AsyncAPI (a superset of JSON Schema draft 07) that any AsyncAPI tool can read.

``mash-broker api asyncapi`` writes it; ``docs/asyncapi.json`` is the committed copy for the
shipped agreement, and a test fails when the two drift apart.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from broker.exceptions import ConfigurationError
from broker.messaging import CE_HEADERS
from broker.topology import DISCLOSURES_EXCHANGE, INGEST_EXCHANGE, Topology, ingest_routing_key

__all__ = ["ASYNCAPI_VERSION", "asyncapi_document", "render_asyncapi"]

ASYNCAPI_VERSION = "3.0.0"
_ROOT = Path(__file__).resolve().parents[2]
_SCHEMAS = _ROOT / "schemas" / "json"
_POLICE_SCHEMA = _ROOT / "docs" / "partners" / "police-record.schema.json"
_AMQP_BINDING = "0.3.0"
_PART = "[A-Za-z0-9_-]+"
#: Five base64url parts; the second (the encrypted key) is never empty for ECDH-ES+A256KW.
_COMPACT_JWE = rf"^{_PART}\.{_PART}\.{_PART}\.{_PART}\.{_PART}$"

# adapter → (title, content type, payload schema or the name of a schema file)
_NATIVE: dict[str, tuple[str, str, dict[str, Any] | Path]] = {
    "police": ("Police missing-person and intelligence record", "application/json", _POLICE_SCHEMA),
    "hl7v2": (
        "HL7 v2 ADT message (A04, A08, A03) from an A&E system",
        "x-application/hl7-v2+er7",
        {"type": "string", "description": "One HL7 v2.x message, segments separated by CR."},
    ),
    "fhir": (
        "FHIR R4 / UK Core message Bundle",
        "application/fhir+json",
        {
            "type": "object",
            "required": ["resourceType", "type", "entry"],
            "properties": {
                "resourceType": {"const": "Bundle"},
                "type": {"const": "message"},
                "entry": {"type": "array", "minItems": 1},
            },
            "description": "A Bundle of type message whose first entry is a MessageHeader.",
        },
    ),
    "paris-csv": (
        "Paris case-status export (CSV)",
        "text/csv",
        {"type": "string", "description": "See docs/partners/paris.md for the columns."},
    ),
    "paris-xml": (
        "Paris case-status export (XML)",
        "application/xml",
        {"type": "string", "description": "See docs/partners/paris.md for the shape."},
    ),
}


def _lift(
    document: Mapping[str, Any], name: str, schemas: dict[str, Any], *, namespace: str = ""
) -> dict[str, str]:
    """Add a 2020-12 schema and its ``$defs`` to ``schemas``; return a reference to it.

    ``namespace`` prefixes the names of its ``$defs``, for schemas (a partner's native
    format) whose definitions may share names with the canonical ones.
    """
    body = copy.deepcopy(dict(document))
    definitions = body.pop("$defs", {})
    for key in ("$schema", "$id"):
        body.pop(key, None)
    for def_name, definition in definitions.items():
        _add(schemas, namespace + def_name, _rewrite(definition, namespace))
    _add(schemas, name, _rewrite(body, namespace))
    return {"$ref": f"#/components/schemas/{name}"}


def _add(schemas: dict[str, Any], name: str, schema: Any) -> None:
    if name in schemas and schemas[name] != schema:
        raise ConfigurationError(f"schema {name} is defined twice, differently")
    schemas[name] = schema


def _rewrite(node: Any, namespace: str) -> Any:
    """Point ``#/$defs/X`` at ``#/components/schemas/X``; draft-07 forms of newer keywords."""
    if isinstance(node, list):
        return [_rewrite(item, namespace) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str) and value.startswith("#/$defs/"):
            out[key] = "#/components/schemas/" + namespace + value.removeprefix("#/$defs/")
        elif key == "discriminator" and isinstance(value, dict):
            # OpenAPI's object form; the AsyncAPI Schema Object takes the property name.
            out[key] = value["propertyName"]
        elif key in ("properties", "patternProperties"):
            out[key] = {name: _rewrite(sub, namespace) for name, sub in value.items()}
        else:
            out[key] = _rewrite(value, namespace)
    return out


def _load(path: Path) -> dict[str, Any]:
    try:
        loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{path}: schema not readable") from exc
    return loaded


def _ce_headers() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "CloudEvents attributes as AMQP headers: ids, types and times only.",
        "properties": {name: {"type": "string"} for name in CE_HEADERS},
        "required": list(CE_HEADERS),
    }


def asyncapi_document(topology: Topology, *, version: str) -> dict[str, Any]:
    """The AsyncAPI 3.0 document for ``topology``.

    Args:
        topology: the broker's topology (``broker.service.topology_for``).
        version: the API version to state (the package version).

    Raises:
        ConfigurationError: a schema file is missing or two schemas clash.
    """
    schemas: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    event_ref = _lift(_load(_SCHEMAS / "event.schema.json"), "Event", schemas)
    claims_ref = _lift(
        _load(_SCHEMAS / "disclosure-claims.schema.json"), "DisclosureClaims", schemas
    )
    ingest_adapters = sorted(
        b.routing_key for b in topology.bindings if b.exchange == INGEST_EXCHANGE
    )
    for adapter in ingest_adapters:
        title, content_type, payload = _NATIVE.get(
            adapter, (f"{adapter} native message", "application/octet-stream", {})
        )
        message_id = f"native-{adapter}"
        if isinstance(payload, Path):
            payload = _lift(
                _load(payload), f"Native-{adapter}", schemas, namespace=f"Native-{adapter}."
            )
        messages[message_id] = {
            "name": message_id,
            "title": title,
            "contentType": content_type,
            "payload": payload,
            "description": f"Translated by the `{adapter}` adapter into canonical events "
            "(components.schemas.Event). Publish with the AMQP user the broker maps to your "
            "party and with `user_id` set to it; mandatory, persistent, confirmed.",
            "bindings": {"amqp": {"messageType": adapter, "bindingVersion": _AMQP_BINDING}},
        }
        channel_id = f"ingest-{adapter}"
        channels[channel_id] = {
            "address": ingest_routing_key(adapter),
            "title": f"Ingest: {title}",
            "description": f"Routing key `{adapter}` on the `{INGEST_EXCHANGE}` exchange; "
            f"the broker consumes the queue `{INGEST_EXCHANGE}.{adapter}`.",
            "messages": {message_id: {"$ref": f"#/components/messages/{message_id}"}},
            "bindings": {
                "amqp": {
                    "is": "routingKey",
                    "exchange": {
                        "name": INGEST_EXCHANGE,
                        "type": "topic",
                        "durable": True,
                        "autoDelete": False,
                    },
                    "bindingVersion": _AMQP_BINDING,
                }
            },
        }
        operations[f"receive-{adapter}"] = {
            "action": "receive",
            "title": f"The broker receives {adapter} messages",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{message_id}"}],
            "bindings": {
                "amqp": {
                    "deliveryMode": 2,
                    "mandatory": True,
                    "userId": "<the partner's AMQP user>",
                    "ack": True,
                    "bindingVersion": _AMQP_BINDING,
                }
            },
        }
    messages["disclosure"] = {
        "name": "disclosure",
        "title": "Sealed disclosure (nested JWT: JWS in JWE)",
        "contentType": "application/jose",
        "headers": _ce_headers(),
        "payload": {
            "type": "string",
            "description": "Compact JWE (ECDH-ES+A256KW over X25519, A256GCM) to the "
            "recipient's key, containing a compact JWS (Ed25519) by the broker whose claims "
            "are components.schemas.DisclosureClaims; the minimised event inside follows "
            "components.schemas.Event with only the fields the agreement allows.",
            "pattern": _COMPACT_JWE,
        },
        "x-decrypted-claims": claims_ref,
        "x-canonical-event": event_ref,
        "bindings": {"amqp": {"messageType": "disclosure", "bindingVersion": _AMQP_BINDING}},
    }
    for party, queue in sorted(topology.recipient_queues.items()):
        channel_id = f"disclosures-{party}"
        channels[channel_id] = {
            "address": queue,
            "title": f"Disclosures for {party}",
            "description": f"Bound to the `{DISCLOSURES_EXCHANGE}` exchange with `{party}.#` "
            f"(routing key `{party}.<event type>`). Quorum queue; poison messages go to "
            f"`{queue}.dlq`.",
            "messages": {"disclosure": {"$ref": "#/components/messages/disclosure"}},
            "bindings": {
                "amqp": {
                    "is": "queue",
                    "queue": {
                        "name": queue,
                        "durable": True,
                        "exclusive": False,
                        "autoDelete": False,
                    },
                    "bindingVersion": _AMQP_BINDING,
                }
            },
        }
        operations[f"send-{party}"] = {
            "action": "send",
            "title": f"The broker sends disclosures to {party}",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/disclosure"}],
            "bindings": {
                "amqp": {
                    "deliveryMode": 2,
                    "mandatory": True,
                    "ack": True,
                    "bindingVersion": _AMQP_BINDING,
                }
            },
        }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": f"urn:mash-broker:{topology.borough}",
        "info": {
            "title": "mash-broker: AMQP interface",
            "version": version,
            "description": "Native messages in, sealed disclosures out, over RabbitMQ. "
            "The HTTP API (OpenAPI at /openapi.json) offers the same ingest.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "rabbitmq": {
                "host": "localhost:5671",
                "protocol": "amqps",
                "description": "The partnership's RabbitMQ; the host is set per deployment.",
                "security": [{"$ref": "#/components/securitySchemes/amqpUser"}],
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "messages": messages,
            "securitySchemes": {
                "amqpUser": {
                    "type": "userPassword",
                    "description": "One AMQP user per partner, mapped to its party id.",
                }
            },
        },
    }


def render_asyncapi(document: Mapping[str, Any]) -> str:
    """The document as committed: indented JSON, keys in insertion order, newline at end."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
