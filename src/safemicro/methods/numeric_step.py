"""The parameters every step on numeric variables shares: ``variables``, defaulting to the numeric keys."""

from __future__ import annotations

from typing import Any

from safemicro.methods.base import StepContext, StepParams


class NumericVariablesParams(StepParams):
    """Base of a step on ``variables`` (default: roles.numeric_keys); subclasses give the docstring."""

    variables: list[str] | None = None  # default: roles.numeric_keys

    def resolve(self, ctx: StepContext) -> dict[str, Any]:
        return {"variables": self.reads(ctx)}

    def reads(self, ctx: StepContext) -> list[str]:
        return list(self.variables or ctx.roles.numeric_keys)

    def check(self, ctx: StepContext) -> None:
        if not self.reads(ctx):
            raise ValueError("this step needs variables (or roles.numeric_keys): the continuous variables it changes")
