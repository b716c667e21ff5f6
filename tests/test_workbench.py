"""The workbench server over HTTP (a real `safemicro workbench` on 127.0.0.1): the token,
bad input (corrupt or oversized upload, unknown column in a pasted recode, a failing step)
answered with a clear message and a 4xx with the project state unchanged, a plan opened and
replayed giving the risk the release pipeline reports, and the project folder's rules."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import polars as pl
import pytest

from safemicro import io
from safemicro.errors import SafemicroError
from safemicro.examples import SURVEY_PLAN
from safemicro.examples.survey import generate_survey
from safemicro.plan import Plan
from safemicro.release import anonymize
from safemicro.risk.rarity import why_rare
from safemicro.workbench.project import Project, safe_filename
from workbench_support import Server

KEYS = ["camp", "origin", "hh_size", "relationship", "sex", "age"]


@pytest.fixture(scope="module")
def survey(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("wb") / "survey.dta"
    with pytest.warns(UserWarning):  # Stata cannot hold the notes and user-missing codes
        io.write(generate_survey(n_households=300), path)
    return path


@pytest.fixture(scope="module")
def server(survey):
    s = Server(survey.parent / "project", survey, "--max-upload-mb", "1")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(server):
    with server.client() as c:
        yield c


@pytest.fixture(scope="module")
def keyed(client, server):
    """The example's reviewed plan opened and replayed (roles, keys, steps)."""
    r = client.post("/open-plan", files={"file": ("plan.yaml", SURVEY_PLAN.read_bytes(), "application/x-yaml")})
    assert r.status_code == 200, r.text[-500:]
    return r


def project_dir(server) -> Path:
    args = server.proc.args
    return Path(args[args.index("--project") + 1])


def snapshot(server) -> bytes:
    return (project_dir(server) / "project.json").read_bytes()


def error_of(html: str) -> str:
    start = html.index('id="error">') + len('id="error">')
    return html[start : html.index("</div>", start)]


def test_every_request_needs_the_token(server, keyed):
    before = snapshot(server)
    for method, path in (("GET", "/data"), ("GET", "/plan.yaml"), ("POST", "/undo"), ("GET", "/static/htmx.min.js")):
        r = httpx.request(method, server.base + path)
        assert r.status_code == 403, path
        assert "access token" in r.text
    r = httpx.post(
        server.base + "/api/steps", json={"step": "remove_direct_ids"}, headers={"X-Workbench-Token": "x" * 32}
    )
    assert r.status_code == 403
    assert snapshot(server) == before
    # first visit with ?token=: a cookie, and the token leaves the URL
    r = httpx.get(server.url)
    assert r.status_code == 303 and "token" not in r.headers["location"]
    cookie = r.cookies
    assert httpx.get(server.base + "/data", cookies=cookie).status_code == 200


def test_plan_opened_is_replayed_like_the_release(client, keyed, survey):
    """The risk after the replayed steps is the release pipeline's risk after (an
    independent path: safemicro.anonymize), without the perturbative noise and new ids."""
    risk = client.get("/api/risk").json()
    release = anonymize(survey, SURVEY_PLAN)
    after = release.report["risk_after"]
    assert risk["violations"] == after["k_anonymity"]["violations"]
    assert risk["global_percent"] == pytest.approx(after["global_risk"]["percent"], rel=1e-9)
    plan = Plan.from_yaml(client.get("/plan.yaml").text)
    assert plan.steps == Plan.from_yaml(SURVEY_PLAN.read_text()).steps
    assert plan.roles.keys == KEYS


def test_corrupt_upload_is_refused_and_nothing_changes(client, server, keyed):
    before = snapshot(server)
    r = client.post(
        "/upload", files={"file": ("broken.dta", b"this is not a Stata file" * 50, "application/octet-stream")}
    )
    assert r.status_code == 400
    assert "broken.dta" in error_of(r.text)
    assert snapshot(server) == before
    assert sorted(p.name for p in (project_dir(server) / "data").iterdir()) == ["survey.dta"]
    assert not list((project_dir(server) / "uploads").iterdir())


def test_oversized_upload_is_refused(client, server, keyed):
    before = snapshot(server)
    r = client.post("/upload", files={"file": ("big.csv", b"a,b\n" + b"1,2\n" * 400_000, "text/csv")})
    assert r.status_code == 400
    assert "too large" in error_of(r.text)
    assert snapshot(server) == before


def test_unknown_column_in_a_pasted_recode(client, server, keyed):
    before = snapshot(server)
    r = client.post(
        "/steps/paste",
        data={"yaml": "recode: {variable: agee, breaks: [0, 18, 200]}"},
        headers={"X-Workbench-Page": "methods"},
    )
    assert r.status_code == 400
    message = error_of(r.text)
    assert "agee" in message and "did you mean" in message and "age" in message
    assert 'id="steps"' in r.text  # the Methods page, with the message on it
    assert snapshot(server) == before


def test_a_failing_step_leaves_the_plan_as_it_was(client, server, keyed):
    before = snapshot(server)
    r = client.post("/api/steps", json={"step": "recode", "params": {"variable": "camp", "map": {1: "x"}}})
    assert r.status_code == 400  # valid parameters, fails when it runs on the data
    assert "new code 'x' is text but 'camp' is numeric" in r.json()["error"]
    r = client.post("/api/steps", json={"step": "recodee", "params": {}})
    assert r.status_code == 400 and "did you mean 'recode'" in r.json()["error"]
    r = client.post("/steps/add", data={"step": "local_suppression", "p_k": "three"})
    assert r.status_code == 400 and "k" in error_of(r.text)
    assert snapshot(server) == before


def test_undo_redo_through_the_api(client, server, keyed):
    steps = client.get("/api/state").json()["plan"]["steps"]
    r = client.post("/api/steps", json={"step": "remove_variables", "params": {"variables": ["arrival_year"]}})
    assert r.status_code == 200 and len(r.json()["steps"]) == len(steps) + 1
    assert client.post("/api/undo").json()["steps"] == steps
    state = json.loads(snapshot(server))
    assert state["redo"] and Plan.from_yaml(state["plan"]).model_dump(mode="json")["steps"] == steps


def test_upload_names_are_never_paths(tmp_path):
    assert safe_filename("../../etc/passwd.csv") == "passwd.csv"
    assert safe_filename("C:\\Users\\x\\survey 2026.sav") == "survey_2026.sav"
    for bad in ("notes.txt", "..", ".csv", ""):
        with pytest.raises(SafemicroError):
            safe_filename(bad)
    src = tmp_path / "in.csv"
    src.write_text("sex,age\n1,30\n2,40\n")
    project = Project(tmp_path / "p")
    project.import_file(src, "../../escape.csv")
    assert (tmp_path / "p" / "data" / "escape.csv").is_file()
    assert not (tmp_path / "escape.csv").exists()
    assert src.read_text() == "sex,age\n1,30\n2,40\n"  # the original untouched


def test_why_rare_hand_checked():
    """Five records; the combination (sex 1, age 30, camp 2) is unique. Leaving camp out,
    3 records share sex 1 and age 30; leaving sex out, 3 share age 30 and camp 2 (record 5's
    missing age matches anything: the wildcard rule); leaving age out, 1."""
    frame = pl.DataFrame(
        {"sex": [1, 1, 1, 2, 2], "age": [30, 30, 30, 30, None], "camp": [1, 1, 2, 2, 2]},
    )
    rows = {r["variable"]: r for r in why_rare(frame, ["sex", "age", "camp"], {"sex": 1, "age": 30, "camp": 2})}
    assert {v: r["fk"] for v, r in rows.items()} == {"sex": 1, "age": 1, "camp": 1}
    assert {v: r["fk_without"] for v, r in rows.items()} == {"camp": 3, "sex": 3, "age": 1}


def test_alternatives_side_by_side_match_adding_them(client, server, keyed):
    """Each alternative's numbers are those the plan gets when the step is really added."""
    before = snapshot(server)
    text = "- topcode: {variable: hh_size, value: 6}\n- recode: {variable: origin, map: {2: 1, 3: 1}}\n"
    r = client.post("/methods/alternatives", data={"yaml": text}, headers={"HX-Target": "alternatives"})
    assert r.status_code == 200
    rows = r.text.split("<tr")[3:]  # header, "now", then one row per alternative
    assert len(rows) == 2
    assert snapshot(server) == before  # nothing saved
    for row, step in zip(
        rows,
        ({"topcode": {"variable": "hh_size", "value": 6}}, {"recode": {"variable": "origin", "map": {2: 1, 3: 1}}}),
    ):
        ((name, params),) = step.items()
        assert client.post("/api/steps", json={"step": name, "params": params}).status_code == 200
        shown = row.split('<td class="n">')[1].split("<")[0]
        assert shown == f"{client.get('/api/risk').json()['violations']['3']:,}"
        client.post("/api/undo")
    r = client.post(
        "/methods/alternatives",
        data={"yaml": "- recode: {variable: nope, breaks: [0, 1]}"},
        headers={"HX-Target": "alternatives"},
    )
    assert r.status_code == 400 and "nope" in r.text and "<html" not in r.text
    assert json.loads(snapshot(server))["plan"] == json.loads(before)["plan"]


def test_a_background_job_can_be_cancelled(client, server, keyed):
    """Synthesis cancelled at once stops at its next stage and writes nothing."""
    r = client.post("/jobs/synthesis")
    assert r.status_code == 200 and 'id="job-synthesis"' in r.text
    assert client.post("/jobs/synthesis/cancel").status_code == 200
    for _ in range(600):
        status = client.get("/jobs/synthesis/status").text
        if "running" not in status:
            break
        time.sleep(0.1)
    assert "cancelled" in status
    assert not (project_dir(server) / "results" / "synthetic").exists()
    assert client.post("/jobs/synthesis/cancel").status_code == 400  # nothing running any more


def test_every_plan_step_gets_a_form_with_its_parameters(client, keyed):
    """The Methods page's form for each step of `safemicro steps` has one field per parameter."""
    from safemicro.methods import STEPS

    for name, spec in STEPS.items():
        r = client.get("/methods", params={"step": name})
        assert r.status_code == 200, name
        for field in spec.params.model_fields:
            assert f'id="p_{field}"' in r.text, (name, field)


def test_edit_a_step_keeps_its_other_parameters(client, keyed):
    """Editing shows the step's current values; saving changes only what was changed."""
    import re

    steps = client.get("/api/state").json()["plan"]["steps"]
    index = next(i for i, s in enumerate(steps) if "recode" in s and s["recode"]["variable"] == "age")
    page = client.get("/methods", params={"edit": index}).text
    form = {"step": "recode"}
    for name, value in re.findall(r'<input name="(p_\w+)" id="p_\w+" value="([^"]*)"', page):
        form[name] = value.replace("&#39;", "'").replace("&#34;", '"')
    for name, value in re.findall(r'<select name="(p_\w+)" id="p_\w+">.*?<option selected>([^<]*)</option>', page):
        form[name] = value
    form["p_breaks"] = "[0, 18, 60, 200]"
    form["p_labels"] = ""
    r = client.post(f"/steps/{index}/edit", data=form)
    assert r.status_code == 200, error_of(r.text)
    edited = client.get("/api/state").json()["plan"]["steps"][index]["recode"]
    assert edited["breaks"] == [0, 18, 60, 200] and edited["right"] is False and "labels" not in edited
    assert client.post("/api/undo").status_code == 200


def test_a_changed_file_does_not_silently_continue_an_old_project(tmp_path):
    from safemicro.workbench.server import prepare

    data = tmp_path / "in.csv"
    data.write_text("sex,age\n1,30\n2,40\n1,30\n")
    assert prepare(data, tmp_path / "p") == "imported"
    assert prepare(data, tmp_path / "p") == "continued"
    data.write_text("sex,age\n1,31\n2,40\n1,30\n")
    with pytest.raises(SafemicroError, match="another version"):
        prepare(data, tmp_path / "p")
    assert (tmp_path / "p" / "data" / "in.csv").read_text() == "sex,age\n1,30\n2,40\n1,30\n"
