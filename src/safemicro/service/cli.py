"""Command-line commands of the service: `serve`, `token keygen|issue|revoke`, `audit verify`."""

from __future__ import annotations

from pathlib import Path

import typer

from safemicro.cli_support import command_group, err, friendly, out, split_list
from safemicro.errors import SafemicroError


def register(app: typer.Typer) -> None:
    """Add the service commands to the main `safemicro` app."""
    token_app = command_group("Issue and revoke access tokens for the aggregate service.")
    audit_app = command_group("Check the service's hash-chained audit log.")
    app.add_typer(token_app, name="token")
    app.add_typer(audit_app, name="audit")

    @app.command()
    @friendly
    def serve(
        config: Path = typer.Argument(..., help="service config (YAML)"),
        host: str = typer.Option("127.0.0.1", "--host", help="address to listen on"),
        port: int = typer.Option(8700, "--port", help="TCP port"),
        workers: int = typer.Option(1, "--workers", min=1, help="processes (more than 1 needs PostgreSQL)"),
    ) -> None:
        """Run the aggregate-only access service (FastAPI + uvicorn, one process by default)."""
        from safemicro.service.app import serve as run

        err.print(f"serving {config} on http://{host}:{port} (OpenAPI at /docs)", highlight=False)
        run(str(config), host=host, port=port, workers=workers)

    @token_app.command("keygen")
    @friendly
    def keygen(
        out_prefix: Path = typer.Argument(..., help="writes PREFIX.key (private) and PREFIX.pub (public)"),
    ) -> None:
        """Make an Ed25519 key pair (for the token issuer or for the node's response signatures)."""
        from safemicro.service.tokens import generate_keypair

        priv, pub = generate_keypair(out_prefix)
        out.print(f"wrote {priv} (keep private) and {pub}", highlight=False)

    @token_app.command("issue")
    @friendly
    def issue(
        key: Path = typer.Option(..., "--key", help="the issuer's Ed25519 private key (PEM)"),
        audience: str = typer.Option(..., "--audience", help="the node's audience (its config `audience`)"),
        subject: str = typer.Option(..., "--subject", help="the analyst"),
        dataset: str = typer.Option(..., "--dataset", help="dataset(s) granted, comma-separated ('*' = all)"),
        queries: str = typer.Option("count", "--queries", help="query kinds, comma-separated"),
        dimensions: str = typer.Option("*", "--dimensions", help="dimensions allowed ('*' = all declared)"),
        measures: str = typer.Option("", "--measures", help="measures allowed ('*' = all declared)"),
        actions: str = typer.Option("query,catalogue,budget", "--actions", help="query, catalogue, budget, revoke"),
        organisation: str = typer.Option("", "--org", help="the analyst's organisation"),
        minutes: float = typer.Option(60, "--minutes", help="lifetime (the node refuses longer than its maximum)"),
    ) -> None:
        """Print a signed token granting an analyst queries on datasets."""
        from safemicro.service.tokens import ACTIONS, issue_token, load_private_key

        acts = split_list(actions)
        bad = [a for a in acts if a not in ACTIONS]
        if bad:
            raise SafemicroError(f"unknown action {bad[0]!r}; use {', '.join(ACTIONS)}")
        kinds = split_list(queries)
        from safemicro.service.config import QUERY_KINDS

        bad = [k for k in kinds if k not in QUERY_KINDS]
        if bad:
            raise SafemicroError(f"unknown query kind {bad[0]!r}; use {', '.join(QUERY_KINDS)}")
        grants = [
            {
                "dataset": d,
                "queries": kinds,
                "dimensions": split_list(dimensions),
                "measures": split_list(measures),
                "actions": acts,
            }
            for d in split_list(dataset)
        ]
        tok = issue_token(
            load_private_key(key),
            audience=audience,
            subject=subject,
            grants=grants,
            organisation=organisation,
            minutes=minutes,
        )
        print(tok)

    @token_app.command("revoke")
    @friendly
    def revoke(
        token_or_jti: str = typer.Argument(..., help="the token, or its id (jti)"),
        config: Path | None = typer.Option(None, "--config", help="write to the node's database directly"),
        url: str | None = typer.Option(None, "--url", help="or ask a running node (needs --admin-token)"),
        admin_token: str | None = typer.Option(None, "--admin-token", help="a token with the revoke action"),
        reason: str = typer.Option("", "--reason", help="why (kept in the audit log)"),
    ) -> None:
        """Put a token on the node's revocation list (refused from then on)."""
        from safemicro.service.tokens import token_claims_unverified

        jti = token_claims_unverified(token_or_jti)["jti"] if token_or_jti.count(".") == 2 else token_or_jti
        if (config is None) == (url is None):
            raise SafemicroError("give either --config (database of the node) or --url with --admin-token")
        if url is not None:
            import httpx

            if not admin_token:
                raise SafemicroError("--url needs --admin-token")
            try:
                r = httpx.post(
                    url.rstrip("/") + "/v1/admin/revocations",
                    json={"jti": jti, "reason": reason},
                    headers={"Authorization": f"Bearer {admin_token}"},
                    timeout=30,
                )
            except httpx.HTTPError as e:
                raise SafemicroError(f"cannot reach {url}: {e}") from None
            if r.status_code != 200:
                raise SafemicroError(f"node refused ({r.status_code}): {r.json().get('error', r.text)}")
        else:
            from safemicro.service.audit import AuditLog
            from safemicro.service.config import load_config
            from safemicro.service.store import Store

            cfg = load_config(config)
            store = Store(cfg.database)
            try:
                added = store.revoke(jti, reason)
            finally:
                store.close()
            AuditLog(cfg.audit_log).append(
                "token", {"action": "revoke", "jti": jti, "by": "cli", "reason": reason, "new": added}
            )
        out.print(f"revoked {jti}", highlight=False)

    @audit_app.command("verify")
    @friendly
    def verify(
        log: Path = typer.Argument(..., help="the audit log (JSON lines)"),
        checkpoint: Path | None = typer.Option(
            None, "--checkpoint", help="a signed checkpoint (JSON from /v1/audit/checkpoint) the log must contain"
        ),
        key: Path | None = typer.Option(None, "--key", help="the node's public key (PEM) to check the checkpoint"),
    ) -> None:
        """Check the hash chain; exit 1 naming the first bad line if anything was changed."""
        import json

        from safemicro.service.audit import verify as run_verify

        if not log.is_file():
            raise SafemicroError("audit log not found", file=str(log))
        head = None
        if checkpoint is not None:
            try:
                head = json.loads(checkpoint.read_text())
            except (OSError, ValueError) as e:
                raise SafemicroError(f"cannot read the checkpoint: {e}", file=str(checkpoint)) from None
            if "signature" in head and key is None:
                raise SafemicroError("a signed checkpoint needs --key (the node's public key)")
        report = run_verify(log, head=head, public_key=key.read_bytes() if key else None)
        if report.ok:
            out.print(f"{log}: chain intact, {report.entries} entries, head {report.head_hash}", highlight=False)
            return
        err.print(f"[bold red]audit log broken[/] at line {report.first_bad_line}: {report.reason}", highlight=False)
        raise typer.Exit(1)
