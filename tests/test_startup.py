"""Start-up stays cheap: `safemicro --help` and `safemicro assess --json` load only what they use.

Each check runs a fresh interpreter (a module imported by an earlier test would hide an
import) and looks at ``sys.modules``: the heavy libraries of the reports (matplotlib,
jinja2), the models (scikit-learn, SciPy's stats), the numba kernels and the service
(FastAPI, DuckDB) are imported inside the commands that need them, never by the CLI module.
The wall-clock numbers are in ``bench/bench_startup.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import KV7, SDC_DATA

SRC = str(Path(__file__).resolve().parents[1] / "src")
# imported by no command that only reads, counts and writes JSON
HEAVY = (
    "matplotlib",
    "jinja2",
    "numba",
    "sklearn",
    "scipy",
    "scipy.stats",
    "pandas",
    "pyarrow",
    "fastapi",
    "duckdb",
    "sqlalchemy",
    "opendp",
    "typer.rich_utils",
)
# what the CLI module itself must not load: the data stack comes with the command that reads data
NOT_AT_IMPORT = (*HEAVY, "polars", "numpy", "pydantic", "yaml", "safemicro.io", "safemicro.report")


# the modules of the commands that live beside their libraries (safemicro.cli_groups)
OTHER_COMMANDS = (
    "safemicro.cli_synth",
    "safemicro.attack.cli",
    "safemicro.metadata.cli",
    "safemicro.service.cli",
    "safemicro.workbench.cli",
    "safemicro.mobility.cli",
    "safemicro.demo_mobility",
)


def _loaded(code: str, tmp_path: Path, watch: tuple[str, ...] = NOT_AT_IMPORT) -> list[str]:
    """Run ``code`` in a fresh interpreter; the modules of ``watch`` it left loaded."""
    script = tmp_path / "probe.py"
    script.write_text(
        "import sys\n" + code + f"\nprint('MODULES=' + ','.join(m for m in {watch!r} if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    line = next(x for x in run.stdout.splitlines() if x.startswith("MODULES="))
    return [m for m in line.removeprefix("MODULES=").split(",") if m]


def test_importing_the_cli_loads_no_heavy_module(tmp_path):
    assert _loaded("import safemicro.cli", tmp_path) == []


def test_help_works_and_loads_no_heavy_module(tmp_path):
    code = (
        "from safemicro.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
    )
    assert _loaded(code, tmp_path) == []
    env = {**os.environ, "PYTHONPATH": SRC}
    run = subprocess.run([sys.executable, "-m", "safemicro.cli", "--help"], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    for command in ("assess", "anonymize", "synthesize", "attack", "document", "serve"):
        assert command in run.stdout


@pytest.mark.parametrize("suda", [False, True])
def test_assess_to_json_loads_no_report_or_model_library(tmp_path, suda):
    args = ["assess", str(SDC_DATA / "testdata.csv"), "--keys", ",".join(KV7), "--weight", "sampling_weight"]
    args += ["--household", "ori_hid", "--json", str(tmp_path / "risk.json"), *(["--suda"] if suda else [])]
    code = f"from safemicro.cli import app\ntry:\n    app({args!r})\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
    loaded = _loaded(code, tmp_path)
    assert [m for m in loaded if m in HEAVY or m == "safemicro.report"] == []
    # nor the anonymization methods (~0.17 s of imports): assess measures, it changes nothing
    assert _loaded(code, tmp_path, ("safemicro.methods",)) == []
    assert "yaml" not in loaded  # roles given as options: no plan file to parse
    assert _loaded(code, tmp_path, OTHER_COMMANDS) == []
    assert json.loads((tmp_path / "risk.json").read_text())["n_records"] == 4580


def test_the_lazy_commands_are_what_their_modules_register():
    """safemicro.cli_groups.LAZY names exactly what each registering function adds, and the
    app lists its commands in the order the app with everything registered at import did."""
    import typer
    import typer.main

    from safemicro import cli_groups
    from safemicro.cli import app

    added = {name: register for register in cli_groups.REGISTRARS for name in cli_groups.build(register)}
    assert added == cli_groups.LAZY
    eager = typer.Typer(add_completion=False, rich_markup_mode=None)
    eager.registered_commands = list(app.registered_commands)
    for register in cli_groups.REGISTRARS:
        register(eager)
    assert list(typer.main.get_command(app).commands) == list(typer.main.get_group(eager).commands)


def test_reading_a_file_loads_no_numpy(tmp_path):
    """`safemicro assess` decodes the file in a thread while NumPy is imported: the readers
    must not need it (the writers do)."""
    assert _loaded("import safemicro.io.readers", tmp_path) == ["polars", "safemicro.io"]


def _blas_threads_after_assess(tmp_path: Path, env_threads: str | None) -> tuple[int, bool]:
    """OpenBLAS's thread count and whether the GC is on after `assess` ran in a fresh process."""
    args = ["assess", str(SDC_DATA / "testdata.csv"), "--keys", ",".join(KV7), "--json", str(tmp_path / "r.json")]
    code = (
        "import gc, os\nfrom safemicro.cli import app\n"
        f"try:\n    app({args!r})\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        "from threadpoolctl import threadpool_info\n"
        "print('BLAS=%d GC=%d' % (min(p['num_threads'] for p in threadpool_info() if p['internal_api'] == 'openblas'),"
        " gc.isenabled()))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    env["PYTHONPATH"] = SRC
    if env_threads:
        env["OPENBLAS_NUM_THREADS"] = env_threads
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    line = next(x for x in run.stdout.splitlines() if x.startswith("BLAS="))
    blas, gc_on = (int(part.split("=")[1]) for part in line.split())
    return blas, bool(gc_on)


def test_assess_starts_one_blas_thread_unless_told(tmp_path):
    """The risk measures use BLAS on the key table at most: a pool of spinning threads at
    NumPy's import is only start-up cost. A user's own setting wins; the GC is back on."""
    assert _blas_threads_after_assess(tmp_path, None) == (1, True)
    assert _blas_threads_after_assess(tmp_path, "2") == (2, True)


def test_the_process_skips_the_gc_walk_at_exit(tmp_path):
    """After the command `main()` freezes what is left: shutdown then frees it by reference
    counting instead of walking it with the cyclic GC (~0.1 s after a million-record assess)."""
    code = (
        "import gc\nfrom safemicro.cli import main\nimport sys\nsys.argv = ['safemicro', '--help']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        "print('FROZEN=%d ENABLED=%d' % (gc.get_freeze_count() > 0, gc.isenabled()))\n"
    )
    env = {**os.environ, "PYTHONPATH": SRC}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "FROZEN=1 ENABLED=0" in run.stdout


@pytest.mark.parametrize("package", ["safemicro.attack", "safemicro.metadata"])
def test_the_lazy_packages_import_no_module_until_a_name_is_used(tmp_path, package):
    """Each name of ``__all__`` comes from its module on first use, and only then."""
    names = ("linkage", "inference", "simulate") if package.endswith("attack") else ("ddi", "documentation", "study")
    watch = tuple(f"{package}.{m}" for m in names)
    assert _loaded(f"import {package}", tmp_path, watch) == []
    code = f"import {package} as p\nfor n in p.__all__: assert getattr(p, n).__name__ == n, n"
    assert _loaded(code, tmp_path, watch) == list(watch)
