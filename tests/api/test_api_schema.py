"""The API against its own OpenAPI document.

* The checked-in ``docs/openapi.json`` is what the code serves (regenerate with
  ``arspay api openapi -o docs/openapi.json``).
* Schemathesis drives the *running* API (uvicorn on a TCP port, a separate process)
  with generated requests for every operation: no 5xx, and every answer conforms to
  the document (status code, content type, headers, body schema).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from ivr.api.app import openapi_document
from ivr.web.app import create_app

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "openapi.json"


def test_checked_in_openapi_document_matches_the_code() -> None:
    assert DOC.read_text(encoding="utf-8") == openapi_document(create_app(None)), (
        "docs/openapi.json is stale: run `arspay api openapi -o docs/openapi.json`"
    )


def test_every_error_answer_is_documented_as_problem_json() -> None:
    doc = json.loads(DOC.read_text(encoding="utf-8"))
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert "security" in op or path in ("/health", "/ready"), (method, path)
            for status, response in op["responses"].items():
                if status[0] in "45":
                    assert list(response["content"]) == ["application/problem+json"], (
                        method,
                        path,
                        status,
                    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    workdir = tmp_path_factory.mktemp("api-server")
    with (
        open(workdir / "server.log", "wb") as log,
        subprocess.Popen(
            [sys.executable, "-m", "tests.api.serve", "--dir", str(workdir)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=log,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        ) as proc,
    ):
        yield from _serving(proc, workdir)


def _serving(proc: subprocess.Popen[bytes], workdir: Path) -> Iterator[dict[str, Any]]:
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise AssertionError((workdir / "server.log").read_text()[-3000:])
        info: dict[str, Any] = json.loads(line)
        info["log"] = workdir / "server.log"
        for _ in range(100):
            try:
                if requests.get(info["url"] + "/health", timeout=1).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        yield info
    finally:
        proc.terminate()
        proc.wait(timeout=20)


CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)


def test_api_conforms_to_its_schema(server: dict[str, Any], tmp_path: Path) -> None:
    """The Schemathesis CLI (``st run``) against the running server: every operation,
    positive and negative examples; any failure fails the test with its report."""
    st = Path(sys.executable).with_name("st")
    out = subprocess.run(
        [
            str(st), "run", server["url"] + "/openapi.json",
            "--checks", CHECKS,
            "--header", f"Authorization: Bearer {server['key']}",
            "--max-examples", "30",
            "--seed", "20261128",
            "--workers", "2",
            "--request-timeout", "30",
            "--suppress-health-check", "all",
            "--continue-on-failure",
            "--report", "junit",
            "--report-dir", str(tmp_path),
        ],
        cwd=tmp_path,  # st keeps a .schemathesis/ cache in its working directory
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )  # fmt: skip
    report = out.stdout[-6000:] + out.stderr[-2000:]
    assert out.returncode == 0, report + "\n" + server["log"].read_text()[-3000:]
    assert "No issues found" in out.stdout or "passed" in out.stdout, report
