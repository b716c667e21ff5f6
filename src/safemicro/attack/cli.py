"""Command-line commands of this package, added to the main `safemicro` app by `register`:
``safemicro attack link|link-register|singling-out|linkability|inference|membership|all|simulate``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from safemicro.cli_support import check_outputs, command_group, friendly, out, split_list
from safemicro.errors import SafemicroError

attack_app = command_group(
    "Empirical disclosure tests: link auxiliary files to a release (the mosaic), singling out, "
    "linkability, inference, membership inference, and the simulation study."
)

JSON_HELP = "write the result as JSON"
HTML_HELP = "write the HTML report"
N_ATTACKS = typer.Option(500, "--n-attacks", help="attacks (predicates, targets) to try")
SEED = typer.Option(
    None, "--seed", help="random seed; without it each run draws a fresh one (give one to reproduce a result)"
)
JSON_OUT = typer.Option(None, "--json", help=JSON_HELP)
HTML_OUT = typer.Option(None, "--html", help=HTML_HELP)
ENCODING = typer.Option(None, "--encoding", help="text encoding of CSV inputs (default: UTF-8, else detected)")


def _read(path: Path, encoding: str | None):
    from safemicro import io

    if path.is_dir():  # a release bundle folder
        from safemicro.release import read_bundle

        return read_bundle(path)[0]
    return io.read(path, **({"encoding": encoding} if encoding else {}))


def _frame(path: Path, encoding: str | None):
    ds = _read(path, encoding)
    frame = ds.frame
    return frame, str(path)


def _write(result: dict[str, Any], json_out: Path | None, html_out: Path | None) -> None:
    from safemicro.attack.report import write_attack_outputs

    try:
        paths = write_attack_outputs(result, json_path=json_out, html_path=html_out)
    except OSError as e:
        raise SafemicroError(f"cannot write output: {e.strerror or e}", file=str(e.filename or "")) from None
    for p in paths:
        out.print(f"wrote {p}", highlight=False)


def _pct(x: Any) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def _print_risk(name: str, r: dict[str, Any]) -> None:
    control = (r.get("control_rate") or {}).get("value")
    out.print(
        f"{name}: risk {_pct(r['risk'])} (95 % CI {_pct(r['ci'][0])}–{_pct(r['ci'][1])}); "
        f"attack {_pct(r['attack_rate']['value'])}, control {_pct(control)}, "
        f"random guess {_pct(r['baseline_rate']['value'])}",
        highlight=False,
    )


def _with_source(frame, path: str):
    from safemicro.io.dataset import Dataset

    return Dataset(frame=frame, source=path)


def _named(pairs: list[str], what: str) -> dict[str, str]:
    outp = {}
    for item in pairs:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise SafemicroError(f"{what} must look like NAME=PATH, got {item!r}")
        outp[name.strip()] = value.strip()
    return outp


@attack_app.command("link")
@friendly
def link(
    release: Path = typer.Argument(..., help="the released file (or release bundle folder)"),
    auxiliary: list[Path] = typer.Argument(
        ..., help="the intruder's file(s); several are combined on --id (the mosaic)"
    ),
    id_col: str = typer.Option(..., "--id", help="identity column of the auxiliary files (scoring only)"),
    original: Path | None = typer.Option(
        None,
        "--original",
        help="the file the release bundle was made from, holding --id (when the release has no --id); "
        "the bundle's internal row map says which of its records each released row is",
    ),
    on: str | None = typer.Option(None, "--on", help="linking columns (default: every shared column)"),
    method: str = typer.Option("exact", "--method", help="exact, distance or fellegi_sunter"),
    block: str | None = typer.Option(None, "--block", help="blocking columns (distance, fellegi_sunter)"),
    numeric: str | None = typer.Option(None, "--numeric", help="columns compared as numbers (distance methods)"),
    tolerance: float = typer.Option(
        0.0, "--tolerance", help="Fellegi–Sunter: numbers agree within this share of the range"
    ),
    threshold: float = typer.Option(0.5, "--threshold", help="confidence for a claim to count as a re-identification"),
    by: str | None = typer.Option(None, "--by", help="auxiliary columns to break the risk down by"),
    household: str | None = typer.Option(
        None, "--household", help="household column of the release: also attack whole households"
    ),
    aux_household: str | None = typer.Option(
        None, "--aux-household", help="household column of the auxiliary file (default: --household)"
    ),
    json_out: Path | None = JSON_OUT,
    html_out: Path | None = HTML_OUT,
    encoding: str | None = typer.Option(None, "--encoding", help="text encoding of CSV files"),
) -> None:
    """Link auxiliary files to a release: true match rate, precision, re-identifications."""
    from safemicro.attack.linkage import LinkageEvaluator

    check_outputs([release, *auxiliary, *([original] if original else [])], [json_out, html_out])
    rel, rel_file = _frame(release, encoding)
    auxes = [_with_source(*_frame(a, encoding)) for a in auxiliary]
    ids = None
    if original is not None:  # the bundle's internal row map says which original record each row is
        from safemicro.attack.correspondence import release_identities

        ids = release_identities(release, original, id_col, encoding=encoding)
    numeric_cols = split_list(numeric) if numeric is not None else None
    ev = LinkageEvaluator(
        _with_source(rel, rel_file),
        auxes if len(auxes) > 1 else auxes[0],
        truth=id_col,
        on=split_list(on) or None,
        release_ids=ids,
        method=method,
        block=split_list(block),
        numeric=numeric_cols,
        tolerance=tolerance,
        threshold=threshold,
        by=split_list(by),
        household=household,
        aux_household=(aux_household or household) if household else aux_household,
    ).evaluate()
    r = ev.results()
    side = r["release_side"]
    out.print(
        f"{r['method']} linkage of {r['n_auxiliary']:,} listed people on {', '.join(r['linking_columns'])}: "
        f"true match rate {_pct(r['true_match_rate'])}, precision {_pct(r['precision'])}, "
        f"{r['reidentified']:,} confident claims ({r['reidentified_correct']:,.1f} right); "
        f"released records re-identified {_pct(side['reidentification_rate'])}",
        highlight=False,
    )
    if r["households"]:
        h = r["households"]
        out.print(
            f"households: {h['reidentified_households_correct']:,} of {h['n_released_households']:,} released "
            f"households re-identified by their composition",
            highlight=False,
        )
    _write(r, json_out, html_out)


def _three(original: Path, release: Path, control: Path | None, encoding: str | None):
    ori, of = _frame(original, encoding)
    syn, sf = _frame(release, encoding)
    ctl = None
    if control is not None:
        c, cf = _frame(control, encoding)
        ctl = _with_source(c, cf)
    return _with_source(ori, of), _with_source(syn, sf), ctl


def _evaluated(evaluator: Any, ori, syn, ctl, n_attacks: int, seed: int | None, *how: str, **options: Any) -> dict:
    """The results of one evaluator run, ``evaluator(ori, syn, ctl, ...).evaluate(*how)``."""
    return evaluator(ori, syn, ctl, n_attacks=n_attacks, seed=seed, **options).evaluate(*how).results()


def _attacks_result(key: str, value: Any, n: int) -> dict[str, Any]:
    return {"kind": "attacks", key: value, "n_attacks": n, "notes": []}


ORIGINAL = typer.Argument(..., help="the original records the release was made from")
RELEASE = typer.Argument(..., help="the released (synthetic or anonymized) file")
CONTROL = typer.Option(None, "--control", help="holdout: real records the release was not made from")


def _inputs(original: Path, release: Path, control: Path | None, outputs: list[Path | None], encoding: str | None):
    """Check the outputs against the inputs, then read original, release and control."""
    check_outputs([original, release, *([control] if control else [])], outputs)
    return _three(original, release, control, encoding)


_SHARED_HEAD = ("original", "release", "control")
_SHARED_TAIL = ("n_attacks", "seed", "json_out", "html_out", "encoding")


def _param(name: str, default: Any, annotation: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


_SHARED = {
    "original": _param("original", ORIGINAL, Path),
    "release": _param("release", RELEASE, Path),
    "control": _param("control", CONTROL, Path | None),
    "n_attacks": _param("n_attacks", N_ATTACKS, int),
    "seed": _param("seed", SEED, int | None),
    "json_out": _param("json_out", JSON_OUT, Path | None),
    "html_out": _param("html_out", HTML_OUT, Path | None),
    "encoding": _param("encoding", ENCODING, str | None),
}


def _release_attack(name: str, **overrides: inspect.Parameter) -> Callable[[Callable[..., Any]], Callable[..., None]]:
    """Register ``run(ori, syn, ctl, *, n_attacks, seed, **own options) -> result`` as
    ``safemicro attack NAME``, with the arguments and options every release attack shares
    (original, release, --control, --n-attacks, --seed, --json, --html, --encoding; a command
    may override one): the files are checked and read before ``run``, the result written
    after it."""

    def decorate(run: Callable[..., Any]) -> Callable[..., None]:
        own = [
            p
            for p in inspect.signature(run).parameters.values()
            if p.name not in ("ori", "syn", "ctl", "n_attacks", "seed")
        ]
        params = (
            [overrides.get(n, _SHARED[n]) for n in _SHARED_HEAD]
            + own
            + [overrides.get(n, _SHARED[n]) for n in _SHARED_TAIL]
        )

        def command(**kw: Any) -> None:
            json_out, html_out = kw.pop("json_out"), kw.pop("html_out")
            ori, syn, ctl = _inputs(
                kw.pop("original"), kw.pop("release"), kw.pop("control"), [json_out, html_out], kw.pop("encoding")
            )
            _write(run(ori, syn, ctl, **kw), json_out, html_out)

        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        command.__name__, command.__qualname__, command.__doc__ = run.__name__, run.__qualname__, run.__doc__
        attack_app.command(name)(friendly(command))
        return command

    return decorate


@_release_attack("singling-out")
def singling_out(
    ori,
    syn,
    ctl,
    *,
    n_attacks: int,
    seed: int | None,
    mode: str = typer.Option("multivariate", "--mode", help="univariate or multivariate"),
    n_cols: int = typer.Option(3, "--n-cols", help="columns per predicate (multivariate)"),
    columns: str | None = typer.Option(None, "--columns", help="columns to attack on (default: all)"),
) -> dict[str, Any]:
    """Singling out: predicates written from the release that pick out one real person."""
    from safemicro.attack.singling_out import SinglingOutEvaluator

    r = _evaluated(
        SinglingOutEvaluator, ori, syn, ctl, n_attacks, seed, mode, n_cols=n_cols, columns=split_list(columns) or None
    )
    _print_risk(f"singling out ({mode})", r)
    return _attacks_result("singling_out", {mode: r}, n_attacks)


@_release_attack("linkability")
def linkability(
    ori,
    syn,
    ctl,
    *,
    n_attacks: int,
    seed: int | None,
    first: str = typer.Option(..., "--first", help="columns of the intruder's first file"),
    second: str = typer.Option(..., "--second", help="columns of the intruder's second file"),
    n_neighbors: int = typer.Option(1, "--neighbors", help="released neighbours each half may share"),
) -> dict[str, Any]:
    """Linkability: the release ties two files about the same people together."""
    from safemicro.attack.linkability import LinkabilityEvaluator

    aux_cols = (split_list(first), split_list(second))
    r = _evaluated(LinkabilityEvaluator, ori, syn, ctl, n_attacks, seed, aux_cols=aux_cols, n_neighbors=n_neighbors)
    _print_risk("linkability", r)
    return _attacks_result("linkability", r, n_attacks)


@_release_attack("inference")
def inference(
    ori,
    syn,
    ctl,
    *,
    n_attacks: int,
    seed: int | None,
    known: str = typer.Option(..., "--known", help="columns the intruder knows"),
    secret: str = typer.Option(..., "--secret", help="the column the intruder guesses"),
    regression: bool | None = typer.Option(
        None, "--regression/--classification", help="numeric secret within 5 % (default: numbers with > 20 values)"
    ),
) -> dict[str, Any]:
    """Inference: the release reveals a secret column of people the intruder knows."""
    from safemicro.attack.inference import InferenceEvaluator

    known_cols = split_list(known)
    r = _evaluated(
        InferenceEvaluator, ori, syn, ctl, n_attacks, seed, aux_cols=known_cols, secret=secret, regression=regression
    )
    _print_risk(f"inference of {secret}", r)
    return _attacks_result("inference", {secret: r}, n_attacks)


@_release_attack(
    "membership",
    control=_param(
        "control", typer.Option(..., "--control", help="holdout: real records the release was not made from"), Path
    ),
)
def membership(
    ori,
    syn,
    ctl,
    *,
    n_attacks: int,
    seed: int | None,
    columns: str | None = typer.Option(None, "--columns", help="columns to compare (default: all)"),
) -> dict[str, Any]:
    """Membership inference: is a person's closeness to the release a sign they were in the data?"""
    from safemicro.attack.membership import MembershipEvaluator

    r = _evaluated(MembershipEvaluator, ori, syn, ctl, n_attacks, seed, columns=split_list(columns) or None)
    _print_risk("membership", r)
    out.print(f"AUC {r['auc']['auc']:.3f} (95 % CI {r['auc']['ci'][0]:.3f}–{r['auc']['ci'][1]:.3f})", highlight=False)
    return _attacks_result("membership", r, n_attacks)


@_release_attack("all", seed=_param("seed", typer.Option(0, "--seed"), int))
def all_attacks(
    ori,
    syn,
    ctl,
    *,
    n_attacks: int,
    seed: int,
    secret: str | None = typer.Option(None, "--secret", help="column for the inference attack"),
    known: str | None = typer.Option(None, "--known", help="columns the intruder knows (default: all but the secret)"),
) -> dict[str, Any]:
    """Every release-level attack at once (singling out, linkability, inference, membership)."""
    from safemicro.attack.privacy import privacy_attacks

    r = privacy_attacks(
        ori, syn, ctl, n_attacks=n_attacks, secret=secret, aux_cols=split_list(known) or None, seed=seed
    )
    for mode, v in r["singling_out"].items():
        _print_risk(f"singling out ({mode})", v)
    if r["linkability"]:
        _print_risk("linkability", r["linkability"])
    for s, v in r["inference"].items():
        _print_risk(f"inference of {s}", v)
    if r["membership"]:
        _print_risk("membership", r["membership"])
    return r


@attack_app.command("simulate")
@friendly
def simulate_cmd(
    population: Path | None = typer.Option(
        None, "--population", help="population file (default: the example survey generated at population size)"
    ),
    households: int = typer.Option(10_000, "--households", help="households of the generated population"),
    fraction: float = typer.Option(0.1, "--fraction", help="share of households sampled (stratified)"),
    plan: list[str] = typer.Option(
        [], "--plan", help="NAME=PLAN.yaml, repeatable (default: raw, k=3, k=5, PRAM from the example plan)"
    ),
    coverage: float = typer.Option(
        1.0, "--coverage", help="share of the population's households on the intruder's list"
    ),
    errors: float = typer.Option(0.0, "--errors", help="chance that a key value on the list is wrong"),
    keys: str | None = typer.Option(None, "--keys", help="what the intruder knows (default: each plan's keys)"),
    threshold: float = typer.Option(0.5, "--threshold", help="confidence for a claim to count as a re-identification"),
    no_households: bool = typer.Option(False, "--no-households", help="skip the household-composition attack"),
    seed: int = typer.Option(1, "--seed"),
    json_out: Path | None = JSON_OUT,
    html_out: Path | None = HTML_OUT,
    encoding: str | None = ENCODING,
) -> None:
    """Simulation study: population → survey sample → release plans → intruder → measured vs promised risk."""
    from safemicro.attack.simulate import simulate
    from safemicro.progress import progress

    check_outputs([population] if population else [], [json_out, html_out])
    pop = _read(population, encoding) if population else None
    releases = _named(plan, "--plan") or None
    n = len(releases) if releases else 4
    with progress(n, "simulating") as advance:
        r = simulate(
            pop,
            n_households=households,
            sample_fraction=fraction,
            releases=releases,
            coverage=coverage,
            error_rate=errors,
            keys=split_list(keys) or None,
            threshold=threshold,
            households=not no_households,
            seed=seed,
            progress=advance,
        )
    out.print(
        f"population {r['population']['n_records']:,} people; sample {r['sample']['n_records']:,}", highlight=False
    )
    for e in r["releases"]:
        m, f = e["measured"], e["frequency"]
        hh = (e.get("households") or {}).get("share_of_released_households_reidentified")
        out.print(
            f"{e['name']:>8}: frequency-based global risk {f['global_risk_percent']:.2f} %, measured "
            f"re-identification {_pct(m['reidentification_rate'])}; households re-identified {_pct(hh)}",
            highlight=False,
        )
    _write(r, json_out, html_out)


def register(app: typer.Typer) -> None:
    """Add ``safemicro attack ...`` to `app`."""
    from safemicro.attack.cli_register import add

    add(attack_app)
    app.add_typer(attack_app, name="attack")
