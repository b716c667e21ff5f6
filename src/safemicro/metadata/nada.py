"""Publish documented releases to a NADA microdata library through its REST API.

What is sent (NADA catalog-admin API, base ``…/index.php/api/``, admin key in the
``X-API-KEY`` header — see NADA's ``api-documentation/catalog-admin/swagger.yaml``):

1. ``POST datasets/import_ddi`` (multipart): the DDI file, ``overwrite``,
   ``repositoryid``, ``access_policy``, ``published`` — creates the survey from the DDI.
2. ``PUT datasets/{IDNo}`` (JSON ``DatasetOptions``): sets the access policy (and the
   publish status) again, so a survey that already existed gets the tier's policy too.
3. for each resource: ``POST datasets/{IDNo}/resources`` (JSON, ``title`` and ``dctype``
   such as ``doc/tec`` or ``dat/micro``), then ``POST datasets/{IDNo}/files/{resource_id}``
   (multipart) with the file, attached to the resource created just before.

Access policy from the release tier: PUF → ``public`` (or ``direct`` on request),
SUF → ``licensed``, enclave → ``data_enclave``. The swagger enum says ``enclave``, but NADA
resolves the policy by the ``model`` column of its ``forms`` table
(``install/schema.mysql.sql``: public, direct, licensed, data_enclave, remote, data_na,
open), so ``data_enclave`` is what a server accepts. Microdata files of an enclave
release are never uploaded.

Internal bundle files (``report.json``, ``report.html``, ``plan.lock.yaml``, the
disclosure risk assessment) hold seeds or approval details and are refused as resources.
``dry_run`` writes every request (API key redacted, files by name, size and SHA-256) to a
folder instead of sending it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safemicro.atomic import atomic_directory
from safemicro.errors import SafemicroError

__all__ = [
    "ACCESS_POLICY",
    "DCTYPES",
    "INTERNAL_FILES",
    "NadaRequest",
    "Resource",
    "PublishPlan",
    "plan_publication",
    "write_requests",
    "send",
]

ACCESS_POLICY = {"puf": "public", "suf": "licensed", "enclave": "data_enclave"}
SERVER_POLICIES = ("public", "direct", "licensed", "data_enclave", "remote", "data_na", "open")
DCTYPES = (
    "doc/adm",
    "doc/anl",
    "doc/oth",
    "doc/qst",
    "doc/ref",
    "doc/rep",
    "doc/tec",
    "aud",
    "dat",
    "map",
    "dat/micro",
    "pic",
    "prg",
    "tbl",
    "vid",
    "web",
)
INTERNAL_FILES = (
    "report.json",
    "report.html",
    "plan.lock.yaml",
    "row_map.csv",
    "disclosure_risk_assessment.json",
    "disclosure_risk_assessment.html",
    "SHA256SUMS",
)
DCFORMATS = {
    ".dta": "application/x-stata",
    ".sav": "application/x-spss",
    ".zsav": "application/x-spss",
    ".sas7bdat": "application/x-sas",
    ".csv": "text/plain",
    ".json": "text/plain",
    ".txt": "text/plain",
    ".html": "text/html",
    ".pdf": "application/pdf",
    ".xml": "text/plain",
    ".zip": "application/zip",
    ".xlsx": "application/msexcel",
    ".docx": "application/msword",
}


@dataclass
class Resource:
    """A file to attach to the survey as an external resource."""

    path: Path
    dctype: str
    title: str
    description: str = ""

    def payload(self) -> dict[str, Any]:
        body = {
            "title": self.title,
            "dctype": self.dctype,
            "dcformat": DCFORMATS.get(self.path.suffix.lower(), "text"),
            "filename": self.path.name,
            "overwrite": "yes",
        }
        if self.description:
            body["description"] = self.description
        return body


@dataclass
class NadaRequest:
    """One HTTP request. ``path`` is relative to the API base; ``{resource_id}`` in it is
    filled from the response of the request named in ``needs``."""

    name: str
    method: str
    path: str
    json: dict[str, Any] | None = None
    form: dict[str, str] | None = None
    files: dict[str, Path] = field(default_factory=dict)
    needs: str | None = None

    def describe(self) -> dict[str, Any]:
        """The request as JSON (files by name, size and checksum; no API key)."""
        out: dict[str, Any] = {
            "name": self.name,
            "method": self.method,
            "path": self.path,
            "headers": {"X-API-KEY": "<redacted>"},
        }
        if self.json is not None:
            out["headers"]["Content-Type"] = "application/json"
            out["json"] = self.json
        if self.form is not None or self.files:
            from safemicro.release import file_sha256

            out["headers"]["Content-Type"] = "multipart/form-data"
            out["form"] = dict(self.form or {})
            out["files"] = {
                k: {"filename": p.name, "bytes": p.stat().st_size, "sha256": file_sha256(p)}
                for k, p in self.files.items()
            }
        if self.needs:
            out["resource_id_from"] = self.needs
        return out


@dataclass
class PublishPlan:
    idno: str
    tier: str
    access_policy: str
    requests: list[NadaRequest]
    skipped: list[str] = field(default_factory=list)


def plan_publication(
    docs: str | os.PathLike[str],
    *,
    bundle: str | os.PathLike[str] | None = None,
    tier: str | None = None,
    access_policy: str | None = None,
    collection: str = "central",
    published: bool = False,
    overwrite: bool = False,
    extra: list[Resource] | None = None,
) -> PublishPlan:
    """The requests that publish the documentation folder ``docs`` (written by
    ``safemicro document``: ``ddi.xml``, ``codebook.html``, ``datapackage.json`` and the
    CSV) and, with ``bundle``, the release bundle's data file and user report."""
    from safemicro.metadata.ddi import read_ddi

    docs = Path(docs)
    ddi = docs / "ddi.xml" if docs.is_dir() else docs
    if not ddi.is_file():
        raise SafemicroError("no ddi.xml here: run `safemicro document` first", file=str(docs))
    imported = read_ddi(ddi)
    idno = imported.study.idno
    if not idno:
        raise SafemicroError("the DDI has no study IDNo (stdyDscr/citation/titlStmt/IDNo)", file=str(ddi))
    report = None
    if bundle is not None:
        from safemicro.release import verify_bundle

        bundle = Path(bundle)
        if not (bundle / "report.json").is_file():
            raise SafemicroError("not a release bundle (no report.json)", file=str(bundle))
        problems = verify_bundle(bundle)
        if problems:
            raise SafemicroError("bundle does not verify: " + "; ".join(problems), file=str(bundle))
        report = json.loads((bundle / "report.json").read_text(encoding="utf-8"))
        bundle_tier = report["scenario"]["tier"]
        if tier is not None and tier != bundle_tier:
            raise SafemicroError(f"--tier {tier} contradicts the bundle's tier {bundle_tier}", file=str(bundle))
        tier = bundle_tier
    if tier is None:
        raise SafemicroError("the release tier is unknown: give --bundle or --tier (puf, suf, enclave)")
    if tier not in ACCESS_POLICY:
        raise SafemicroError(f"unknown tier {tier!r} (puf, suf or enclave)")
    policy = access_policy or ACCESS_POLICY[tier]
    if policy not in SERVER_POLICIES:
        raise SafemicroError(f"unknown access policy {policy!r} (one of {', '.join(SERVER_POLICIES)})")
    if tier != "puf" and policy in ("public", "direct", "open"):
        raise SafemicroError(f"a {tier} release cannot get the access policy {policy!r} (that is for public use files)")

    requests = [
        NadaRequest(
            name="import_ddi",
            method="POST",
            path="datasets/import_ddi",
            form={
                "overwrite": "yes" if overwrite else "no",
                "repositoryid": collection,
                "access_policy": policy,
                "published": "1" if published else "0",
            },
            files={"file": ddi},
        ),
        NadaRequest(
            name="set_access_policy",
            method="PUT",
            path=f"datasets/{idno}",
            json={"access_policy": policy, "published": 1 if published else 0},
        ),
    ]
    resources: list[Resource] = []
    skipped: list[str] = []
    micro_ok = tier != "enclave"
    if (docs / "codebook.html").is_file():
        resources.append(
            Resource(docs / "codebook.html", "doc/tec", "Codebook", "Variables, categories and weighted frequencies.")
        )
    if report is not None and (bundle / "external_report.html").is_file():
        resources.append(
            Resource(
                bundle / "external_report.html",
                "doc/tec",
                "Statistical disclosure control: note for users",
                "What was done to protect respondents and how to analyse the file.",
            )
        )
    if (docs / "datapackage.json").is_file():
        dp = json.loads((docs / "datapackage.json").read_text(encoding="utf-8"))
        resources.append(Resource(docs / "datapackage.json", "doc/tec", "Data Package descriptor (Frictionless v2)"))
        for res in dp.get("resources", []):
            csv = docs / res.get("path", "")
            if csv.is_file():
                if micro_ok:
                    resources.append(Resource(csv, "dat/micro", f"Microdata (CSV): {csv.name}"))
                else:
                    skipped.append(f"{csv.name}: microdata of an enclave release are not uploaded")
    if report is not None:
        data = bundle / report["release"]["files"]["data"]
        if data.suffix.lower() != ".csv":
            if micro_ok:
                resources.append(
                    Resource(data, "dat/micro", f"Microdata ({data.suffix.lstrip('.').upper()}): {data.name}")
                )
            else:
                skipped.append(f"{data.name}: microdata of an enclave release are not uploaded")
    for r in extra or []:
        if r.dctype == "dat/micro" and not micro_ok:
            skipped.append(f"{r.path.name}: microdata of an enclave release are not uploaded")
            continue
        resources.append(r)
    for r in resources:
        if r.path.name in INTERNAL_FILES:
            raise SafemicroError(
                "internal bundle file (seeds or approval details): it is never published", file=str(r.path)
            )
        if r.dctype not in DCTYPES:
            raise SafemicroError(f"unknown dctype {r.dctype!r} (one of {', '.join(DCTYPES)})", file=str(r.path))
        if not r.path.is_file():
            raise SafemicroError("resource file not found", file=str(r.path))
    for i, r in enumerate(resources, start=1):
        requests.append(
            NadaRequest(name=f"resource_{i}", method="POST", path=f"datasets/{idno}/resources", json=r.payload())
        )
        requests.append(
            NadaRequest(
                name=f"upload_{i}",
                method="POST",
                path=f"datasets/{idno}/files/{{resource_id}}",
                files={"file": r.path},
                needs=f"resource_{i}",
            )
        )
    return PublishPlan(idno=idno, tier=tier, access_policy=policy, requests=requests, skipped=skipped)


def write_requests(plan: PublishPlan, folder: str | os.PathLike[str], *, overwrite: bool = False) -> list[Path]:
    """Dry run: write each request as ``NN-name.json`` and an ``index.json`` into ``folder``."""
    names = []
    with atomic_directory(folder, overwrite=overwrite) as staging:
        for i, req in enumerate(plan.requests, start=1):
            name = f"{i:02d}-{req.name}.json"
            (staging / name).write_text(
                json.dumps(req.describe(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
            )
            names.append(name)
        index = {
            "idno": plan.idno,
            "tier": plan.tier,
            "access_policy": plan.access_policy,
            "requests": names,
            "skipped": plan.skipped,
            "note": "dry run: nothing was sent; the API key is not stored",
        }
        (staging / "index.json").write_text(json.dumps(index, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return [Path(folder) / n for n in [*names, "index.json"]]


def _message(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        msg = body.get("message") or body.get("status") or ""
        errors = body.get("errors")
        return f"{msg} {json.dumps(errors)[:300]}" if errors else str(msg)
    return str(body)[:300]


def send(
    plan: PublishPlan,
    base_url: str,
    api_key: str,
    *,
    timeout: float = 60.0,
    on_request: Callable[[NadaRequest], None] | None = None,
    transport: Any = None,
) -> list[dict[str, Any]]:
    """Send the requests in order with httpx; returns one log entry per request
    (method, path, status, response body). Stops at the first failure with a
    :class:`SafemicroError` naming the request and NADA's message."""
    import httpx

    if not api_key:
        raise SafemicroError("no NADA API key (set SAFEMICRO_NADA_API_KEY or pass --api-key)")
    base = base_url.rstrip("/") + "/"
    log: list[dict[str, Any]] = []
    ids: dict[str, Any] = {}
    with httpx.Client(
        base_url=base,
        headers={"X-API-KEY": api_key, "Accept": "application/json"},
        timeout=timeout,
        transport=transport,
        follow_redirects=False,
    ) as client:
        for req in plan.requests:
            if on_request:
                on_request(req)
            path = req.path
            if req.needs:
                if req.needs not in ids:
                    raise SafemicroError(f"{req.name}: no resource id from {req.needs}")
                path = path.replace("{resource_id}", str(ids[req.needs]))
            handles = []
            try:
                kwargs: dict[str, Any] = {}
                if req.json is not None:
                    kwargs["json"] = req.json
                if req.form is not None or req.files:
                    kwargs["data"] = dict(req.form or {})
                    files = {}
                    for key, p in req.files.items():
                        h = open(p, "rb")
                        handles.append(h)
                        files[key] = (p.name, h, "application/octet-stream")
                    kwargs["files"] = files
                try:
                    response = client.request(req.method, path, **kwargs)
                except httpx.HTTPError as exc:
                    raise SafemicroError(f"NADA request {req.name} ({req.method} {base}{path}) failed: {exc}") from None
            finally:
                for h in handles:
                    h.close()
            try:
                body: Any = response.json()
            except ValueError:
                body = response.text[:2000]
            log.append(
                {"name": req.name, "method": req.method, "path": path, "status": response.status_code, "response": body}
            )
            if response.status_code >= 400:
                hint = ""
                if req.name == "import_ddi" and req.form and req.form.get("overwrite") == "no":
                    hint = " (if the survey exists already, --overwrite replaces it)"
                raise SafemicroError(
                    f"NADA refused {req.name} ({req.method} {path}): HTTP {response.status_code} "
                    f"{_message(response)}{hint}"
                )
            if req.name.startswith("resource_"):
                rid = None
                if isinstance(body, dict):
                    rid = (
                        (body.get("resource") or {}).get("resource_id")
                        if isinstance(body.get("resource"), dict)
                        else None
                    )
                if rid is None:
                    raise SafemicroError(f"NADA's answer to {req.name} has no resource.resource_id: {str(body)[:200]}")
                ids[req.name] = rid
    return log
