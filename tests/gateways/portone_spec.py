"""PortOne's v1 API document as a checker: requests out, answers in.

    spec = Spec.load()
    spec.request_problems("POST", "/subscribe/payments/again", {}, body, pg="ksnet")
    spec.response_problems("POST", "/subscribe/payments/again", 200, answer)

The document (``tests/data/portone/v1.openapi.json``) is Swagger 2.0: request fields are
``formData`` parameters (the API takes them as JSON too, as its guides send them),
answers are ``definitions`` reached by ``$ref``/``allOf``. A small checker rather than a
JSON-Schema library, because the document needs readings a library would not make:

* ``maxLength``/``maximum`` are sometimes strings (``"80"``): read as numbers.
* Swagger 2.0 has no ``nullable``; PortOne answers ``null`` for absent optional fields
  (the document says so of ``card_type``), so ``null`` passes for a property that is not
  ``required`` — a required one must be present and not null.
* The 200 schema of ``/subscribe/customers/{customer_uid}`` is an object whose
  properties are ``CustomerResponse`` and ``SuperBillingKeyResponse``: it means *one of
  them*, and is read that way.
* Optional path parameters (``/payments/findAll/{merchant_uid}/{payment_status}``) may
  be left off the end of the path.
* Answers are strict: a property the definition does not list is a problem (the sandbox
  claims to answer as the document says, so a name it made up should show).

``pg`` adds that PG's ``x-portone-per-pg`` ``required`` fields to the request check.
Every problem is a short sentence naming the field; an empty list means conforming.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

DOCUMENT = Path(__file__).resolve().parents[1] / "data" / "portone" / "v1.openapi.json"

Json = dict[str, Any]


def _number(value: object) -> float | None:
    if value is None:
        return None
    return float(value)  # type: ignore[arg-type]  # int, float or a numeric string


def _type_ok(kind: str, value: object) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return type(value) is int
    if kind == "number":
        return type(value) in (int, float)
    if kind == "boolean":
        return type(value) is bool
    if kind == "array":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    raise AssertionError(f"type {kind!r} is not in the document's vocabulary")


@dataclass(frozen=True)
class Operation:
    method: str
    template: str  # the document's path
    spec: Json

    def params(self, where: str) -> dict[str, Json]:
        return {p["name"]: p for p in self.spec.get("parameters", []) if p["in"] == where}


class Spec:
    def __init__(self, document: Json) -> None:
        self.doc = document
        self.definitions: dict[str, Json] = document["definitions"]

    @classmethod
    def load(cls, path: Path = DOCUMENT) -> Spec:
        return _load(path)

    # ------------------------------------------------------------------ operations

    def operation(self, method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
        """The operation a concrete path (no query) is an instance of, and its path
        parameters; ``None`` when the document has no such operation."""
        best: tuple[int, Operation, dict[str, str]] | None = None
        for template, item in self.doc["paths"].items():
            op = item.get(method.lower())
            found = None if op is None else _match(template, path, op)
            if found is None:
                continue
            literal = sum(not w.startswith("{") for w in template.split("/"))
            if best is None or literal > best[0]:  # /a/literal beats /a/{param}
                best = (literal, Operation(method.upper(), template, op), found)
        return None if best is None else (best[1], best[2])

    # ------------------------------------------------------------------ requests

    def request_problems(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        body: Mapping[str, Any] | None,
        *,
        pg: str = "",
    ) -> list[str]:
        found = self.operation(method, path)
        if found is None:
            return [f"{method} {path}: no such operation in the document"]
        op, path_params = found
        problems: list[str] = []
        path_spec = op.params("path")
        for name, text in path_params.items():
            problems += _value_problems(f"path {name}", path_spec[name], text, self)
        query_spec = op.params("query")
        for name, text in query.items():
            if name not in query_spec:
                problems.append(f"query {name}: not a parameter of {op.method} {op.template}")
                continue
            problems += _value_problems(f"query {name}", query_spec[name], text, self,
                                        from_text=True)  # fmt: skip
        form = op.params("formData")
        fields = dict(body or {})
        for name, value in fields.items():
            if name not in form:
                problems.append(f"field {name}: not a parameter of {op.method} {op.template}")
                continue
            problems += _value_problems(f"field {name}", form[name], value, self)
        for name, param in form.items():
            per_pg = (param.get("x-portone-per-pg") or {}).get(pg, {}) if pg else {}
            required = param.get("required") or per_pg.get("required")
            value = fields.get(name)
            if required and value in (None, ""):
                why = f" by {pg}" if not param.get("required") else ""
                problems.append(f"field {name}: required{why}, not sent")
            # A rule the document states in words: "특수문자를 허용하고 있지 않습니다" (Smartro)
            words = str(per_pg.get("description", ""))
            plain = isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9]*", value) is not None
            if (
                "특수문자를 허용하고 있지 않습니다" in words
                and isinstance(value, str)
                and not plain
            ):
                problems.append(f"field {name}: {pg} takes letters and digits only")
        return problems

    # ------------------------------------------------------------------ answers

    def response_problems(self, method: str, path: str, status: int, body: object) -> list[str]:
        found = self.operation(method, path)
        if found is None:
            return [f"{method} {path}: no such operation in the document"]
        op, _ = found
        if status != 200:  # no schema but the envelope's, and nothing in it
            envelope = {"allOf": [{"$ref": "#/definitions/ResponseAnnotation"},
                                  {"properties": {"response": {"type": "object"}}}]}  # fmt: skip
            problems = self.schema_problems(envelope, body, "answer")
            if isinstance(body, dict) and body.get("response") is not None:
                problems.append(f"answer.response: HTTP {status} with a response")
            return problems
        schema = op.spec["responses"]["200"]["schema"]
        return self.schema_problems(schema, body, "answer")

    def resolve(self, schema: Json) -> Json:
        while "$ref" in schema:
            name = schema["$ref"].removeprefix("#/definitions/")
            schema = self.definitions[name]
        return schema

    def _alternatives(self, schema: Json) -> list[Json] | None:
        """The "one of" reading of an object whose properties are all whole responses."""
        props = schema.get("properties") or {}
        if (
            props
            and "type" not in schema
            and all(
                name.endswith("Response") and p.get("$ref") == f"#/definitions/{name}"
                for name, p in props.items()
            )
        ):
            return list(props.values())
        return None

    def _flatten(self, schema: Json) -> tuple[dict[str, Json], set[str], str | None]:
        """(properties, required, type) of ``schema`` with ``allOf`` merged."""
        schema = self.resolve(schema)
        props: dict[str, Json] = dict(schema.get("properties") or {})
        required = set(schema.get("required") or ())
        kind = schema.get("type")
        for part in schema.get("allOf", ()):
            p, r, k = self._flatten(part)
            props.update(p)
            required |= r
            kind = kind or k
        return props, required, kind

    def schema_problems(self, schema: Json, value: object, where: str) -> list[str]:
        schema = self.resolve(schema)
        alternatives = self._alternatives(schema)
        if alternatives is not None:
            tries = [self.schema_problems(alt, value, where) for alt in alternatives]
            return [] if any(not t for t in tries) else min(tries, key=len)
        props, required, kind = self._flatten(schema)
        if props or kind == "object" or required:
            if not isinstance(value, dict):
                return [f"{where}: not an object"]
            problems: list[str] = []
            for name in sorted(required):
                if value.get(name) is None:
                    problems.append(f"{where}.{name}: required, missing or null")
            for name, item in value.items():
                if name not in props:
                    problems.append(f"{where}.{name}: not in the document")
                elif item is not None:
                    problems += self.schema_problems(props[name], item, f"{where}.{name}")
            return problems
        return _value_problems(where, schema, value, self)


def _value_problems(
    where: str, spec: Json, value: object, doc: Spec, *, from_text: bool = False
) -> list[str]:
    """One value against a parameter or a non-object schema (type, items, maxLength,
    enum, maximum/minimum). ``from_text``: a query value, always a string on the wire."""
    if "schema" in spec:  # a formData parameter described by a schema (``extra``)
        return doc.schema_problems(spec["schema"], value, where)
    kind = spec.get("type")
    if from_text and isinstance(value, str) and kind in ("integer", "number"):
        if re.fullmatch(r"-?\d+", value) is None:
            return [f"{where}: not an {kind}"]
        value = int(value)
    if kind is not None and not _type_ok(kind, value):
        return [f"{where}: expected {kind}, got {type(value).__name__}"]
    problems: list[str] = []
    limit = _number(spec.get("maxLength"))
    if limit is not None and isinstance(value, str) and len(value) > limit:
        problems.append(f"{where}: longer than {int(limit)}")
    if "enum" in spec and value not in spec["enum"]:
        problems.append(f"{where}: {value!r} is not one of {spec['enum']}")
    top, bottom = _number(spec.get("maximum")), _number(spec.get("minimum"))
    if isinstance(value, int | float) and not isinstance(value, bool):
        if top is not None and value > top:
            problems.append(f"{where}: above {top:g}")
        if bottom is not None and value < bottom:
            problems.append(f"{where}: below {bottom:g}")
    if kind == "array" and isinstance(value, list) and "items" in spec:
        for i, item in enumerate(value):
            problems += doc.schema_problems(spec["items"], item, f"{where}[{i}]")
    return problems


def _match(template: str, path: str, op: Json) -> dict[str, str] | None:
    """Path parameters of ``path`` as an instance of ``template``; trailing optional
    path parameters may be missing."""
    optional = {p["name"] for p in op.get("parameters", [])
                if p["in"] == "path" and not p.get("required")}  # fmt: skip
    want = template.strip("/").split("/")
    got = path.strip("/").split("/")
    while len(want) > len(got) and want[-1].strip("{}") in optional:
        want = want[:-1]
    if len(want) != len(got):
        return None
    params: dict[str, str] = {}
    for w, g in zip(want, got, strict=True):
        if w.startswith("{") and w.endswith("}"):
            if not g:
                return None
            params[w[1:-1]] = g
        elif w != g:
            return None
    return params


@cache
def _load(path: Path) -> Spec:
    return Spec(json.loads(path.read_text(encoding="utf-8")))
