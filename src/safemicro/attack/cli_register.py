"""``safemicro attack link-register``: exact linkage of a large register against a release,
blocked on the key table (:mod:`safemicro.attack.record_linkage.blocked`), out of core."""

from __future__ import annotations

from pathlib import Path

import typer

from safemicro.cli_support import check_outputs, friendly, out, split_list


def add(attack_app: typer.Typer) -> None:
    """Add the command to ``safemicro attack``."""

    @attack_app.command("link-register")
    @friendly
    def link_register(
        release: Path = typer.Argument(..., help="the released file (Parquet or CSV)"),
        register: Path = typer.Argument(..., help="the intruder's register (Parquet or CSV, any size)"),
        id_col: str = typer.Option(..., "--id", help="identity column of the register (scoring only)"),
        release_id: str | None = typer.Option(
            None, "--release-id", help="identity column of the release (default: --id)"
        ),
        on: str = typer.Option(..., "--on", help="linking columns, comma-separated"),
        threshold: float = typer.Option(0.5, "--threshold", help="confidence for a re-identification"),
        claims: Path | None = typer.Option(None, "--claims", help="write the per-record claims (Parquet)"),
        json_out: Path | None = typer.Option(None, "--json", help="write the summary as JSON"),
    ) -> None:
        """Exact linkage of a register of any size against a release (missing values are
        wildcards): true match rate, precision, re-identifications."""
        import json

        from safemicro.atomic import write_text
        from safemicro.attack.record_linkage.blocked import link_exact_blocked

        check_outputs([release, register], [claims, json_out])
        result = link_exact_blocked(
            release, register, split_list(on), truth=id_col, release_truth=release_id, claims_out=claims
        )
        s = result.summary(threshold)
        rate = "–" if s["true_match_rate"] is None else f"{100 * s['true_match_rate']:.2f} %"
        out.print(
            f"exact linkage of {s['n_auxiliary']:,} register records ({s['n_register_keys']:,} distinct keys) "
            f"against {s['n_release_keys']:,} released keys: true match rate {rate}, "
            f"{s['reidentified']:,} confident claims ({s['reidentified_correct']:,.1f} right)",
            highlight=False,
        )
        if json_out is not None:
            write_text(json_out, json.dumps({"kind": "linkage", **s}, indent=2, allow_nan=False) + "\n")
            out.print(f"wrote {json_out}", highlight=False)
        if claims is not None:
            out.print(f"wrote {claims}", highlight=False)
