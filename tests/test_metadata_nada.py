"""NADA publishing: payloads validated against NADA's published API schemas (vendored in
tests/data/nada) and the client run against a stub NADA server on 127.0.0.1 that checks
method, path, the API key header and every body. Never the internet."""

from __future__ import annotations

import email.parser
import email.policy
import json
import re
import threading
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from defusedxml import ElementTree as SafeET
from typer.testing import CliRunner

import safemicro
from safemicro.cli import app
from safemicro.errors import SafemicroError
from safemicro.examples import SURVEY_PLAN, generate_survey
from safemicro.io import write
from safemicro.metadata.documentation import document
from safemicro.metadata.nada import Resource, plan_publication, send, write_requests

SPEC = Path(__file__).parent / "data" / "nada"
KEY = "test-admin-key-0123456789"
BASE = "/index.php/api/"
DDI_NS = "{ddi:codebook:2_5}"


def _swagger() -> dict[str, Any]:
    return yaml.safe_load((SPEC / "swagger.yaml").read_text(encoding="utf-8"))


def _swagger_text_params(path: str, method: str) -> list[dict[str, str]]:
    """Parameters of an endpoint with every scalar kept as text (``yes``/``no`` stay)."""
    raw = yaml.load((SPEC / "swagger.yaml").read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
    return raw["paths"][path][method]["parameters"]


SERVER_POLICIES = [f["model"] for f in json.loads((SPEC / "forms-access-types.json").read_text())["forms"]]


def dataset_options_schema() -> dict[str, Any]:
    """Swagger's DatasetOptions with the access-policy names the server's forms table holds."""
    schema = json.loads(json.dumps(_swagger()["definitions"]["DatasetOptions"]))
    enum = schema["properties"]["access_policy"]["enum"]
    schema["properties"]["access_policy"]["enum"] = sorted(set(enum) | set(SERVER_POLICIES))
    schema["additionalProperties"] = False
    return schema


def resource_schema() -> dict[str, Any]:
    schema = json.loads((SPEC / "resource-schema.json").read_text(encoding="utf-8"))
    # `overwrite` is read by the server (Resources.php) though the schema does not list it
    schema["properties"]["overwrite"] = {"type": "string", "enum": ["yes", "no"]}
    schema["additionalProperties"] = False
    return schema


def check_import_form(form: dict[str, str], files: dict[str, tuple[str, bytes]]) -> list[str]:
    """Problems of an import_ddi multipart body against the swagger's formData parameters."""
    problems = []
    params = _swagger_text_params("/datasets/import_ddi", "post")
    known = {p["name"] for p in params}
    for p in params:
        name = p["name"]
        present = name in form or name in files
        if p.get("required") == "true" and not present:
            problems.append(f"{name} missing")
        if name in form and "enum" in p:
            allowed = set(p["enum"]) | (set(SERVER_POLICIES) if name == "access_policy" else set())
            if form[name] not in allowed:
                problems.append(f"{name}={form[name]!r} not in {sorted(allowed)}")
        if name in form and p.get("type") == "integer" and not re.fullmatch(r"-?\d+", form[name]):
            problems.append(f"{name} is not an integer")
    problems += [f"unknown field {n}" for n in [*form, *files] if n not in known]
    return problems


def _multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    form, files = {}, {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        filename = part.get_filename()
        payload = part.get_payload(decode=True)
        if filename is not None:
            files[name] = (filename, payload)
        else:
            form[name] = payload.decode("utf-8")
    return form, files


class StubNada:
    """Just enough of NADA's catalog-admin API, strict about what it is sent."""

    def __init__(self) -> None:
        self.log: list[dict[str, Any]] = []
        self.surveys: dict[str, dict[str, Any]] = {}
        self.resources: dict[int, dict[str, Any]] = {}
        self.files: dict[str, bytes] = {}
        self.options_validator = jsonschema.Draft4Validator(dataset_options_schema())
        self.resource_validator = jsonschema.Draft7Validator(resource_schema())

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        entry = {"method": method, "path": path, "key": headers.get("x-api-key")}
        self.log.append(entry)
        if not path.startswith(BASE):
            return 404, {"status": "failed", "message": "not the API"}
        if headers.get("x-api-key") != KEY:
            return 403, {"status": "failed", "message": "Invalid API key"}
        route = path[len(BASE) :]
        ctype = headers.get("content-type", "")
        if method == "POST" and route == "datasets/import_ddi":
            if not ctype.startswith("multipart/form-data"):
                return 400, {"status": "failed", "message": "multipart expected"}
            form, files = _multipart(ctype, body)
            problems = check_import_form(form, files)
            if problems:
                return 400, {"status": "failed", "message": "; ".join(problems)}
            filename, xml = files["file"]
            root = SafeET.fromstring(xml)
            idno = root.find(f"{DDI_NS}stdyDscr/{DDI_NS}citation/{DDI_NS}titlStmt/{DDI_NS}IDNo").text
            if idno in self.surveys and form.get("overwrite") != "yes":
                return 400, {"status": "failed", "message": "Study already exists"}
            sid = len(self.surveys) + 1
            self.surveys[idno] = {"sid": sid, "form": form, "ddi": xml, "options": {}}
            entry["form"] = form
            return 200, {"status": "success", "survey": {"sid": sid, "idno": idno}, "rdf": []}
        m = re.fullmatch(r"datasets/([^/]+)", route)
        if method == "PUT" and m:
            idno = m.group(1)
            if idno not in self.surveys:
                return 400, {"status": "failed", "message": "IDNO-NOT-FOUND"}
            if not ctype.startswith("application/json"):
                return 400, {"status": "failed", "message": "json expected"}
            data = json.loads(body)
            errors = [e.message for e in self.options_validator.iter_errors(data)]
            if errors:
                return 400, {"status": "failed", "message": "VALIDATION_ERRORS", "errors": errors}
            self.surveys[idno]["options"].update(data)
            entry["json"] = data
            return 200, {"status": "success"}
        m = re.fullmatch(r"datasets/([^/]+)/resources", route)
        if method == "POST" and m:
            idno = m.group(1)
            if idno not in self.surveys:
                return 400, "IDNO-NOT-FOUND"
            data = json.loads(body)
            errors = [e.message for e in self.resource_validator.iter_errors(data)]
            if errors:
                return 400, {"message": "VALIDATION_ERROR", "errors": errors}
            rid = len(self.resources) + 1
            self.resources[rid] = {**data, "resource_id": rid, "survey": idno}
            entry["json"] = data
            return 200, {"status": "success", "resource": {"resource_id": rid, **data}, "uploaded_file": None}
        m = re.fullmatch(r"datasets/([^/]+)/files/(\d+)", route)
        if method == "POST" and m:
            idno, rid = m.group(1), int(m.group(2))
            if rid not in self.resources or self.resources[rid]["survey"] != idno:
                return 400, "resource not found"
            form, files = _multipart(ctype, body)
            if set(files) != {"file"} or form:
                return 400, "exactly one part `file` expected"
            name, data = files["file"]
            if name != self.resources[rid]["filename"]:
                return 400, "file name differs from the resource's"
            self.files[name] = data
            self.resources[rid]["uploaded"] = True
            entry["file"] = name
            return 200, {"status": "success", "uploaded_file_name": name}
        return 404, {"status": "failed", "message": f"no route {method} {route}"}


@pytest.fixture
def nada():
    stub = StubNada()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, payload = stub.handle(self.command, self.path, headers, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, *args) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    stub.url = f"http://127.0.0.1:{server.server_address[1]}{BASE}"
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> dict[str, Path]:
    """A real SUF bundle of the example survey and its documentation folder."""
    work = tmp_path_factory.mktemp("nada")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write(generate_survey(n_households=120, seed=11), work / "survey.dta")
        safemicro.anonymize(work / "survey.dta", SURVEY_PLAN, show_progress=False).write(work / "suf")
    study = work / "study.yaml"
    study.write_text("study:\n  idno: EX-SURVEY-2026-SUF\n  title: Example survey\n", encoding="utf-8")
    document(work / "suf", work / "docs", study=study)
    return {"bundle": work / "suf", "docs": work / "docs", "work": work}


# ------------------------------------------------------------------------------- tests


def test_payloads_validate_against_the_published_schemas(release):
    plan = plan_publication(release["docs"], bundle=release["bundle"])
    assert plan.tier == "suf" and plan.access_policy == "licensed" and plan.idno == "EX-SURVEY-2026-SUF"
    options = jsonschema.Draft4Validator(dataset_options_schema())
    resources = jsonschema.Draft7Validator(resource_schema())
    dctypes = re.findall(
        r"`([a-z/]+)` - ",
        json.loads((SPEC / "resource-schema.json").read_text())["properties"]["dctype"]["description"],
    )
    swagger_paths = _swagger()["paths"]
    seen = []
    for req in plan.requests:
        template = re.sub(r"datasets/EX-SURVEY-2026-SUF", "datasets/{x}", req.path)
        seen.append((req.method, template))
        if req.name == "import_ddi":
            assert "/datasets/import_ddi" in swagger_paths
            files = {k: (p.name, p.read_bytes()) for k, p in req.files.items()}
            assert check_import_form(req.form, files) == []
        elif req.name == "set_access_policy":
            assert list(options.iter_errors(req.json)) == []
        elif req.name.startswith("resource_"):
            assert list(resources.iter_errors(req.json)) == []
            assert req.json["dctype"] in dctypes
        else:
            assert req.path.endswith("/files/{resource_id}") and set(req.files) == {"file"}
    assert seen[:2] == [("POST", "datasets/import_ddi"), ("PUT", "datasets/{x}")]
    assert ("POST", "datasets/{x}/resources") in seen and ("POST", "datasets/{x}/files/{resource_id}") in seen
    # every endpoint used is one the swagger documents
    documented = {
        "datasets/import_ddi",
        "datasets/{IDNo}",
        "datasets/{datasetIDNo}/resources",
        "datasets/{datasetIDNo}/files/{resourceId}",
    }
    assert documented <= {p.lstrip("/") for p in swagger_paths}


def test_publish_suf_bundle_to_a_stub_server(release, nada):
    plan = plan_publication(release["docs"], bundle=release["bundle"], published=True)
    log = send(plan, nada.url, KEY)
    assert [e["status"] for e in log] == [200] * len(plan.requests)
    survey = nada.surveys["EX-SURVEY-2026-SUF"]
    assert survey["form"]["access_policy"] == "licensed" and survey["form"]["published"] == "1"
    assert survey["options"] == {"access_policy": "licensed", "published": 1}
    assert b"ddi:codebook:2_5" in survey["ddi"]
    # every resource created got its file; the microdata and the user report are there
    assert all(r.get("uploaded") for r in nada.resources.values())
    by_name = {r["filename"]: r for r in nada.resources.values()}
    assert by_name["survey.dta"]["dctype"] == "dat/micro" and by_name["survey.csv"]["dctype"] == "dat/micro"
    assert by_name["codebook.html"]["dctype"] == "doc/tec"
    assert "external_report.html" in by_name
    assert nada.files["survey.dta"] == (release["bundle"] / "survey.dta").read_bytes()
    # internal files never leave the machine
    assert not {"report.json", "report.html", "plan.lock.yaml", "disclosure_risk_assessment.json"} & set(nada.files)
    assert all(e["key"] == KEY for e in nada.log)
    # a second import without overwrite is refused by the server: a clear error
    with pytest.raises(SafemicroError, match="HTTP 400 Study already exists"):
        send(plan, nada.url, KEY)
    again = plan_publication(release["docs"], bundle=release["bundle"], overwrite=True)
    send(again, nada.url, KEY)


@pytest.mark.parametrize(
    "tier,policy,micro",
    [("puf", "public", True), ("suf", "licensed", True), ("enclave", "data_enclave", False)],
)
def test_access_policy_follows_the_tier(release, nada, tier, policy, micro):
    plan = plan_publication(release["docs"], tier=tier)
    send(plan, nada.url, KEY)
    survey = nada.surveys["EX-SURVEY-2026-SUF"]
    assert survey["form"]["access_policy"] == policy and survey["options"]["access_policy"] == policy
    dctypes = [r["dctype"] for r in nada.resources.values()]
    assert ("dat/micro" in dctypes) is micro
    if not micro:
        assert any("enclave" in s for s in plan.skipped)


def test_wrong_key_and_unreachable_server_are_clear_errors(release, nada):
    plan = plan_publication(release["docs"], tier="puf")
    with pytest.raises(SafemicroError, match="HTTP 403 Invalid API key"):
        send(plan, nada.url, "wrong-key")
    assert nada.surveys == {}
    with pytest.raises(SafemicroError, match="no NADA API key"):
        send(plan, nada.url, "")
    with pytest.raises(SafemicroError, match="failed"):
        send(plan, "http://127.0.0.1:9/index.php/api/", KEY, timeout=2)


def test_refuses_internal_files_and_public_policy_for_a_suf(release):
    with pytest.raises(SafemicroError, match="never published"):
        plan_publication(
            release["docs"],
            bundle=release["bundle"],
            extra=[Resource(release["bundle"] / "plan.lock.yaml", "doc/tec", "lock")],
        )
    with pytest.raises(SafemicroError, match="cannot get the access policy"):
        plan_publication(release["docs"], bundle=release["bundle"], access_policy="public")
    with pytest.raises(SafemicroError, match="contradicts"):
        plan_publication(release["docs"], bundle=release["bundle"], tier="puf")
    with pytest.raises(SafemicroError, match="tier is unknown"):
        plan_publication(release["docs"])
    with pytest.raises(SafemicroError, match="unknown dctype"):
        plan_publication(release["docs"], tier="puf", extra=[Resource(release["docs"] / "ddi.xml", "doc/xyz", "x")])


def test_dry_run_writes_the_requests(release, tmp_path):
    plan = plan_publication(release["docs"], bundle=release["bundle"])
    paths = write_requests(plan, tmp_path / "requests")
    index = json.loads((tmp_path / "requests" / "index.json").read_text())
    assert index["access_policy"] == "licensed" and len(index["requests"]) == len(plan.requests)
    first = json.loads(paths[0].read_text())
    assert first["method"] == "POST" and first["path"] == "datasets/import_ddi"
    assert first["files"]["file"]["filename"] == "ddi.xml" and len(first["files"]["file"]["sha256"]) == 64
    second = json.loads(paths[1].read_text())
    assert second == {
        "name": "set_access_policy",
        "method": "PUT",
        "path": "datasets/EX-SURVEY-2026-SUF",
        "headers": {"X-API-KEY": "<redacted>", "Content-Type": "application/json"},
        "json": {"access_policy": "licensed", "published": 0},
    }
    for p in paths:
        assert KEY not in p.read_text()


def test_cli_publish_dry_run_and_send(release, nada, tmp_path, monkeypatch):
    runner = CliRunner()
    res = runner.invoke(
        app, ["publish", str(release["docs"]), "--bundle", str(release["bundle"]), "--dry-run", str(tmp_path / "req")]
    )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "req" / "index.json").is_file() and nada.log == []
    questionnaire = tmp_path / "questionnaire.pdf"
    questionnaire.write_bytes(b"%PDF-1.4 fake")
    monkeypatch.setenv("SAFEMICRO_NADA_API_KEY", KEY)
    res = runner.invoke(
        app,
        [
            "publish",
            str(release["docs"]),
            "--bundle",
            str(release["bundle"]),
            "--url",
            nada.url,
            "--resource",
            f"{questionnaire}=doc/qst:Questionnaire",
            "--log",
            str(tmp_path / "log.json"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert any(r["dctype"] == "doc/qst" and r["title"] == "Questionnaire" for r in nada.resources.values())
    assert nada.files["questionnaire.pdf"] == b"%PDF-1.4 fake"
    log = json.loads((tmp_path / "log.json").read_text())
    assert log[0]["response"]["status"] == "success"
    monkeypatch.setenv("SAFEMICRO_NADA_API_KEY", "bad")
    res = runner.invoke(
        app, ["publish", str(release["docs"]), "--bundle", str(release["bundle"]), "--url", nada.url, "--overwrite"]
    )
    assert res.exit_code == 2 and "403" in res.output and "Traceback" not in res.output


def test_the_stub_refuses_payloads_outside_the_schemas(release, nada):
    """The checks above can fail: tampered payloads are refused by the stub's schemas."""
    plan = plan_publication(release["docs"], tier="puf")
    plan.requests[0].form["published"] = "yes"
    with pytest.raises(SafemicroError, match="published is not an integer"):
        send(plan, nada.url, KEY)
    plan = plan_publication(release["docs"], tier="puf")
    plan.requests[1].json["access_policy"] = "secret"
    with pytest.raises(SafemicroError, match="VALIDATION_ERRORS"):
        send(plan, nada.url, KEY)
    plan = plan_publication(release["docs"], tier="puf", overwrite=True)
    plan.requests[2].json["colour"] = "red"
    with pytest.raises(SafemicroError, match="VALIDATION_ERROR"):
        send(plan, nada.url, KEY)
    plan = plan_publication(release["docs"], tier="puf", overwrite=True)
    del plan.requests[2].json["title"]
    with pytest.raises(SafemicroError, match="title"):
        send(plan, nada.url, KEY)
