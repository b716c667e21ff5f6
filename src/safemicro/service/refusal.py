"""A request the node refuses: its HTTP status and the message the analyst sees."""

from __future__ import annotations


class Refusal(Exception):
    """A request the node answers with a 4xx/5xx status and a message (no data)."""

    def __init__(self, status: int, message: str, field: str | None = None, detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.detail = detail  # for the provider's audit log only, never sent


def not_available(dataset: str, detail: str) -> Refusal:
    """One answer for a dataset that does not exist and one the token is not granted, so
    that dataset names cannot be probed (the audit log keeps which it was)."""
    return Refusal(404, f"no dataset {dataset!r} is available to this token", "dataset", detail=detail)
