"""An OpenAPI 3.0 document as a request/response validator (for PortOne's V2 document).

Each operation's ``requestBody`` and ``responses`` schemas are validated with JSON
Schema draft 7 (``jsonschema_rs``) after two rewrites of ``components.schemas``:

* ``oneOf`` + ``discriminator.mapping`` (how V2 writes ``Payment``, ``BillingKeyInfo``,
  every ``…Error``) becomes "the discriminator property is one of the mapping's keys,
  and the object is valid against the schema its value names" — plain ``oneOf`` cannot
  tell the branches apart, since each only says ``status: string``.
* **strict objects**: every object schema with ``properties`` refuses other properties,
  so a misspelt or invented field is an error, in what the connector sends and in what
  the sandbox answers.

Query parameters must be documented for the operation (and ``requestBody`` in the query,
V2's "GET with a body", is validated as the body); an answer's status must be one the
operation documents.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs

Json = Any


def _rewrite(node: Json) -> Json:
    if isinstance(node, list):
        return [_rewrite(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _rewrite(v) for k, v in node.items()}
    disc = out.get("discriminator")
    if "oneOf" in out and isinstance(disc, dict) and disc.get("mapping"):
        prop, mapping = disc["propertyName"], disc["mapping"]
        return {
            "type": "object",
            "required": [prop],
            "properties": {prop: {"enum": sorted(mapping)}},
            "allOf": [
                {"if": {"properties": {prop: {"const": key}}, "required": [prop]},
                 "then": {"$ref": ref}}
                for key, ref in sorted(mapping.items())
            ],
        }  # fmt: skip
    if out.get("type") == "object" and "properties" in out:
        out.setdefault("additionalProperties", False)
    return out


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    spec: Mapping[str, Any]

    @property
    def operation_id(self) -> str:
        return str(self.spec.get("operationId", f"{self.method} {self.template}"))


class OpenApi3:
    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document
        self._components = {"schemas": _rewrite(copy.deepcopy(document["components"]["schemas"]))}
        self._paths: list[tuple[re.Pattern[str], str]] = []
        for template in document["paths"]:
            rx = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
            self._paths.append((re.compile(f"^{rx}$"), template))

    @classmethod
    def load(cls, path: Path) -> OpenApi3:
        return cls(json.loads(path.read_text(encoding="utf-8")))

    def operation(self, method: str, path: str) -> Operation:
        """The operation of ``method path`` (a concrete path, no query); literal
        segments beat templated ones (``/billing-keys/confirm`` before ``{billingKey}``)."""
        found = [t for rx, t in self._paths if rx.match(path)]
        found = [t for t in found if method.lower() in self.document["paths"][t]]
        if not found:
            raise LookupError(f"no operation for {method} {path}")
        template = max(found, key=lambda t: len(re.sub(r"\{[^}]+\}", "", t)))
        return Operation(method.upper(), template, self.document["paths"][template][method.lower()])

    @cache  # noqa: B019 - one document per test session
    def _validator(self, ref: str) -> Any:
        schema = {"$ref": ref, "components": self._components}
        return jsonschema_rs.Draft7Validator(schema, validate_formats=True)

    def errors(self, schema: Mapping[str, Any], instance: Json) -> list[str]:
        ref = schema.get("$ref")
        if not isinstance(ref, str):
            raise AssertionError(f"inline schema not supported: {schema}")
        return [
            f"/{'/'.join(map(str, e.instance_path))}: {e.message}"
            for e in self._validator(ref).iter_errors(instance)
        ]

    def request_errors(
        self, op: Operation, query: Mapping[str, str], body: Json | None
    ) -> list[str]:
        params = {p["name"]: p for p in op.spec.get("parameters", []) if p["in"] == "query"}
        problems = [f"undocumented query parameter {n!r}" for n in query if n not in params]
        if "requestBody" in query and "requestBody" in params:
            schema = params["requestBody"]["content"]["application/json"]["schema"]
            problems += self.errors(schema, json.loads(query["requestBody"]))
        rb = op.spec.get("requestBody")
        if body is None:
            if rb is not None and rb.get("required"):
                problems.append("required request body missing")
            return problems
        if rb is None:
            return [*problems, "a body the operation does not take"]
        return problems + self.errors(rb["content"]["application/json"]["schema"], body)

    def response_errors(self, op: Operation, status: int, body: Json) -> list[str]:
        answer = op.spec["responses"].get(str(status))
        if answer is None:
            return [f"undocumented status {status} for {op.operation_id}"]
        return self.errors(answer["content"]["application/json"]["schema"], body)

    def security_schemes(self) -> Mapping[str, Any]:
        schemes: Mapping[str, Any] = self.document["components"]["securitySchemes"]
        return schemes
