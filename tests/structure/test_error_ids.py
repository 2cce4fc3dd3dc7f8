"""Every error class names its own ``error_id`` as a class keyword (``class X(Base,
error_id="…")``): kebab-case, unique across the engine and the vault, and the keyword
sets what the API, the console and the vault socket read."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.structure.source import parse
from vault.errors import BY_ID, ArspayError, InvalidCard, RemoteError, VaultError

ROOT = Path(__file__).resolve().parents[2]
KEBAB = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
NO_OWN_ID = {"RemoteError"}  # carries the id the vault server sent


def error_classes() -> dict[str, tuple[str, str | None, bool]]:
    """Every class deriving (by name) from ArspayError: its file, its ``error_id``
    keyword and whether its body still assigns ``error_id`` or ``http_status``."""
    classes: dict[str, ast.ClassDef] = {}
    where: dict[str, str] = {}
    for package in ("ivr", "vault"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(parse(path)):
                if isinstance(node, ast.ClassDef):
                    classes[node.name] = node
                    where[node.name] = str(path.relative_to(ROOT))
    errors = {"ArspayError"}
    grew = True
    while grew:
        found = {
            name
            for name, node in classes.items()
            if any(isinstance(b, ast.Name) and b.id in errors for b in node.bases)
        }
        grew = not found <= errors
        errors |= found
    out = {}
    for name in sorted(errors - {"ArspayError"}):
        node = classes[name]
        ids = [k.value for k in node.keywords if k.arg == "error_id"]
        error_id = ids[0].value if ids and isinstance(ids[0], ast.Constant) else None
        assigns = any(
            isinstance(stmt, ast.Assign | ast.AnnAssign)
            and any(
                isinstance(t, ast.Name) and t.id in ("error_id", "http_status")
                for t in (stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target])
            )
            for stmt in node.body
        )
        out[name] = (where[name], error_id, assigns)
    return out


def test_every_error_class_has_its_own_kebab_case_id() -> None:
    classes = error_classes()
    assert len(classes) > 60  # the walk found the trees
    missing = [n for n, (_w, eid, _a) in classes.items() if eid is None and n not in NO_OWN_ID]
    assert missing == []
    bad = [eid for _w, eid, _a in classes.values() if eid is not None and not KEBAB.fullmatch(eid)]
    assert bad == []


def test_error_ids_are_unique() -> None:
    seen: dict[str, str] = {"internal-error": "ArspayError"}
    twice = []
    for name, (_where, eid, _assigns) in error_classes().items():
        if eid is None:
            continue
        if eid in seen:
            twice.append((eid, seen[eid], name))
        seen[eid] = name
    assert twice == []


def test_ids_and_statuses_are_class_keywords_not_body_assignments() -> None:
    assigned = [(n, w) for n, (w, _eid, a) in error_classes().items() if a]
    assert assigned == []


def test_the_keywords_set_the_class_attributes_and_a_status_is_inherited() -> None:
    class Teapot(ArspayError, error_id="test-teapot", http_status=418): ...

    class Kettle(Teapot, error_id="test-kettle"): ...

    assert (Teapot.error_id, Teapot.http_status) == ("test-teapot", 418)
    assert (Kettle.error_id, Kettle.http_status) == ("test-kettle", 418)
    assert Kettle("boiling").message == "boiling"
    # With two bases the first one's status is inherited: InvalidCard (a VaultError,
    # 500, and an InvalidInput, 422) names its 422 again.
    assert (InvalidCard.error_id, InvalidCard.http_status) == ("invalid-card", 422)
    assert VaultError.http_status == 500


def test_the_vault_registry_maps_every_id_to_its_class() -> None:
    assert all(cls.error_id == eid for eid, cls in BY_ID.items())
    assert RemoteError not in BY_ID.values()
    assert BY_ID["vault-record-tampered"].__name__ == "RecordTampered"


@pytest.mark.parametrize("bad", [{"error_idd": "x"}, {"status": 400}])
def test_an_unknown_class_keyword_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(TypeError):
        type("Bad", (ArspayError,), {}, **bad)
