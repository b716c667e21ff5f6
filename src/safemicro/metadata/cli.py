"""Command-line commands of this package, added to the main `safemicro` app by `register`:
``safemicro document`` and ``safemicro publish``."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from safemicro.cli_support import check_outputs, err, friendly, out, split_list
from safemicro.errors import SafemicroError

API_KEY_ENV = "SAFEMICRO_NADA_API_KEY"


def register(app: typer.Typer) -> None:
    """Add this package's commands to `app`."""

    @app.command()
    @friendly
    def document(
        source: Path = typer.Argument(..., help="a release bundle folder or a data file (CSV, .dta, .sav, ...)"),
        out_dir: Path = typer.Option(..., "--out", "-o", help="folder for ddi.xml, codebook.html, datapackage.json"),
        study: Path | None = typer.Option(None, "--study", help="study description (YAML): title, idno, abstract, ..."),
        plan: Path | None = typer.Option(None, "--plan", help="release plan (weight, tier, k) for a plain data file"),
        weight: str | None = typer.Option(None, "--weight", help="weight variable for weighted frequencies"),
        tier: str | None = typer.Option(None, "--tier", help="puf, suf or enclave (default: the bundle's)"),
        mask_below: int | None = typer.Option(
            None, "--mask-below", help="mask category counts below this (default: the plan's k for a PUF; 0 = off)"
        ),
        max_categories: int = typer.Option(200, "--max-categories", help="categories listed per variable"),
        prefill: Path | None = typer.Option(None, "--prefill", help="existing DDI 2.5 file: labels and study fields"),
        only: str | None = typer.Option(None, "--only", help="comma-separated subset of ddi,html,datapackage"),
        encoding: str | None = typer.Option(None, "--encoding", help="text encoding of a CSV file"),
    ) -> None:
        """Document a dataset or release bundle: DDI Codebook 2.5, HTML codebook, Data Package."""
        from safemicro.metadata.documentation import document as run_document

        if tier is not None and tier not in ("puf", "suf", "enclave"):
            raise SafemicroError(f"--tier must be puf, suf or enclave, got {tier!r}")
        outputs = tuple(split_list(only)) or ("ddi", "html", "datapackage")
        unknown = [o for o in outputs if o not in ("ddi", "html", "datapackage")]
        if unknown:
            raise SafemicroError(f"--only: unknown output(s) {', '.join(unknown)} (ddi, html, datapackage)")
        check_outputs([source, study, plan, prefill], folders=[out_dir], overwrite=True)
        src = source
        if encoding and not source.is_dir():
            from safemicro import io

            src = io.read(source, encoding=encoding)
        paths = run_document(
            src,
            out_dir,
            outputs=outputs,
            study=study,
            plan=plan,
            weight=weight,
            tier=tier,
            mask_below=mask_below,
            max_categories=max_categories,
            prefill_ddi=prefill,
        )
        for name, path in paths.items():
            out.print(f"{name}: {path}", highlight=False, markup=False)

    @app.command()
    @friendly
    def publish(
        docs: Path = typer.Argument(..., help="folder written by `safemicro document` (holds ddi.xml)"),
        bundle: Path | None = typer.Option(None, "--bundle", help="release bundle: tier, data file, user report"),
        url: str | None = typer.Option(None, "--url", help="NADA API base, e.g. https://host/index.php/api/"),
        api_key: str | None = typer.Option(
            None, "--api-key", help=f"NADA admin API key (better: the {API_KEY_ENV} environment variable)"
        ),
        tier: str | None = typer.Option(None, "--tier", help="puf, suf or enclave when no --bundle is given"),
        access: str | None = typer.Option(None, "--access", help="override the access policy (e.g. direct for a PUF)"),
        collection: str = typer.Option("central", "--collection", help="NADA collection (repositoryid)"),
        published: bool = typer.Option(False, "--published/--draft", help="publish at once or leave as draft"),
        overwrite: bool = typer.Option(False, "--overwrite", help="replace a survey with the same IDNo"),
        resource: list[str] = typer.Option(
            [], "--resource", help="extra file as PATH=DCTYPE[:title], e.g. questionnaire.pdf=doc/qst (repeatable)"
        ),
        dry_run: Path | None = typer.Option(None, "--dry-run", help="write the requests to this folder, send nothing"),
        log: Path | None = typer.Option(None, "--log", help="write the API responses as JSON here"),
    ) -> None:
        """Publish documentation (and a release bundle) to a NADA catalogue."""
        import json

        from safemicro.atomic import write_text
        from safemicro.metadata.nada import Resource, plan_publication, send, write_requests

        check_outputs([docs, bundle], [log], folders=[dry_run], overwrite=True)
        extra = []
        for spec in resource:
            path_text, sep, rest = spec.rpartition("=")
            if not sep or not path_text:
                raise SafemicroError(f"--resource {spec!r}: write PATH=DCTYPE[:title]")
            dctype, _, title = rest.partition(":")
            p = Path(path_text)
            extra.append(Resource(p, dctype.strip(), title.strip() or p.name))
        plan = plan_publication(
            docs,
            bundle=bundle,
            tier=tier,
            access_policy=access,
            collection=collection,
            published=published,
            overwrite=overwrite,
            extra=extra,
        )
        for note in plan.skipped:
            err.print(f"[yellow]skipped:[/] {note}", highlight=False)
        if dry_run is not None:
            paths = write_requests(plan, dry_run, overwrite=True)
            out.print(
                f"dry run: {len(plan.requests)} requests for {plan.idno} (access policy {plan.access_policy}) "
                f"written to {dry_run}/ ({len(paths)} files); nothing sent",
                highlight=False,
                markup=False,
            )
            return
        if not url:
            raise SafemicroError("--url is required to send (or use --dry-run DIR)")
        key = api_key or os.environ.get(API_KEY_ENV, "")
        entries = send(
            plan, url, key, on_request=lambda r: err.print(f"{r.method} {r.path}", highlight=False, markup=False)
        )
        if log is not None:
            write_text(log, json.dumps(entries, indent=2, ensure_ascii=False) + "\n")
        out.print(
            f"published {plan.idno} to {url} with access policy {plan.access_policy} ({len(entries)} requests)",
            highlight=False,
            markup=False,
        )
