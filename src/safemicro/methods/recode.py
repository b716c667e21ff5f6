"""Global recoding (numeric bands, category merges, user hierarchies) and top/bottom coding.

Global recoding replaces every value of a variable by a coarser one, the same way in every
record, so the released variable is a function of the original and analysis stays simple.

* **Bands** follow R's ``cut`` exactly (the definition sdcMicro's ``globalRecode`` uses):
  right-closed ``(a,b]`` unless ``right=False``; a value on the outermost break is inside
  only with ``include_lowest``; values outside every band become missing (counted in the
  change record). A number of breaks gives equal-width bands (sdcMicro "equidistant"),
  quantile bands ("equalAmount"; coinciding breaks are merged, not jittered) or equal
  width on the log scale ("logEqui"). The output holds integer codes with value labels
  describing each band, so Stata/SPSS releases stay readable.
* **Merges** (``map={6: 9, 7: 9}``) and **hierarchies** (ARX-style: for each original value
  its generalisation at level 1, 2, ...) recode categories.
* **Top/bottom coding** replaces values strictly above (below) a threshold.

User-missing codes and missing cells are never recoded; they stay as they are.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import model_validator

from safemicro.errors import SafemicroError
from safemicro.io.dataset import Dataset
from safemicro.methods.base import Change, MethodResult, StepContext, StepParams, register
from safemicro.methods.recode_bands import BandMethod, Bands, LabelStyle, _band_recode, resolve_bands
from safemicro.methods.recode_common import _check_column
from safemicro.methods.recode_hierarchy import _apply_map, _hierarchy_map, _json_val, read_hierarchy
from safemicro.methods.topbottom import top_bottom_code

__all__ = ["global_recode", "top_bottom_code", "Bands", "resolve_bands", "read_hierarchy"]


# -- the method --------------------------------------------------------------------------


def global_recode(
    ds: Dataset,
    *,
    variable: str,
    breaks: list[float] | int | None = None,
    method: BandMethod | None = None,
    right: bool = True,
    include_lowest: bool | None = None,
    map: dict | None = None,
    hierarchy: Any = None,
    level: int = 1,
    labels: LabelStyle | list[str] | dict | None = None,
    codes: Literal["index", "lower"] = "index",
) -> MethodResult:
    """Recode ``variable`` globally: numeric bands, a category merge, or a hierarchy level.

    Give exactly one of:

    * ``breaks`` - cut points (R ``cut`` semantics: right-closed unless ``right=False``,
      the outermost break inside only with ``include_lowest``; values outside all bands
      become missing) or a number of bands (``method`` equal_width, the default, quantile
      or log_equal_width). The result holds band codes (``codes="index"``: 1, 2, ...;
      ``"lower"``: the smallest value of each band) labelled "15-24" for whole-number data
      or "(14,24]" otherwise (``labels="range"``/``"interval"``, a list, or {code: text}).
    * ``map`` - {old code: new code}; other values are kept. ``labels`` {new code: text}.
    * ``hierarchy`` - for each original value its generalisations (see
      :func:`read_hierarchy`) and the ``level`` to apply (1 = first generalisation).

    Missing cells and user-missing codes are left as they are.
    """
    _check_column(ds, variable)
    given = [n for n, v in (("breaks", breaks), ("map", map), ("hierarchy", hierarchy)) if v is not None]
    if len(given) != 1:
        raise SafemicroError(
            "give exactly one of breaks, map or hierarchy" + (f" (got {' and '.join(given)})" if given else ""),
            column=variable,
        )
    notes: list[str] = []
    if breaks is not None:
        out, params, details, notes = _band_recode(ds, variable, breaks, method, right, include_lowest, labels, codes)
    elif map is not None:
        if not isinstance(map, dict) or not map:
            raise SafemicroError("map must be a non-empty mapping {old code: new code}", column=variable)
        if labels is not None and not isinstance(labels, dict):
            raise SafemicroError("with map, labels must be a mapping {new code: text}", column=variable)
        out, details, notes = _apply_map(ds, variable, map, labels)
        params = {"variable": variable, "map": {str(k): _json_val(v) for k, v in map.items()}}
        if labels:
            params["labels"] = {str(k): str(v) for k, v in labels.items()}
    else:
        if labels is not None and not isinstance(labels, dict):
            raise SafemicroError("with a hierarchy, labels must be a mapping {code: text}", column=variable)
        mapping, code_labels, height = _hierarchy_map(ds, variable, hierarchy, level)
        if mapping:
            out, details, notes = _apply_map(ds, variable, mapping, labels, new_labels=code_labels)
        else:
            out, details = ds.with_frame(ds.frame), {"kind": "map", "merges": [], "unused": []}
            notes.append("hierarchy level 0 keeps the original values")
        details["kind"] = "hierarchy"
        details["level"] = level
        details["height"] = height
        details["categories"] = int(
            out.frame.filter(~out.missing_expr(variable).fill_null(True)).get_column(variable).n_unique()
        )
        params = {"variable": variable, "hierarchy": "user hierarchy", "level": level}
    coding = (ds.codebook.meta(variable).value_labels, out.codebook.meta(variable).value_labels)
    change = Change.measured(
        ds.frame,
        out.frame,
        [variable],
        {variable: coding},
        method="global_recode",
        params=params,
        details=details,
        notes=notes,
    )
    return MethodResult(out, change)


# -- plan steps ------------------------------------------------------------------------------


class RecodeParams(StepParams):
    """``recode``: bands (``breaks``), a merge (``map``) or a ``hierarchy`` level of one variable."""

    variable: str
    breaks: list[float] | int | None = None
    method: BandMethod | None = None
    right: bool = True
    include_lowest: bool | None = None
    map: dict[Any, Any] | None = None
    hierarchy: dict[Any, Any] | list[list[Any]] | str | None = None
    level: int = 1
    labels: LabelStyle | list[str] | dict[Any, str] | None = None
    codes: Literal["index", "lower"] = "index"

    @model_validator(mode="after")
    def _one_kind(self) -> RecodeParams:
        given = [n for n in ("breaks", "map", "hierarchy") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of breaks, map or hierarchy" + (f" (got {' and '.join(given)})" if given else "")
            )
        if self.breaks is None and self.labels is not None and not isinstance(self.labels, dict):
            raise ValueError("with map or hierarchy, labels must be a mapping {code: text}")
        if self.map is not None and not self.map:
            raise ValueError("map must not be empty")
        if self.level < 0:
            raise ValueError("level must be 0 or more")
        return self

    def reads(self, ctx: StepContext) -> list[str]:
        return [self.variable]

    def kwargs(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


def _short_list(items: list[str], limit: int = 8) -> str:
    if len(items) <= limit:
        return ", ".join(items)
    return ", ".join(items[: limit - 2]) + ", …, " + ", ".join(items[-2:])


def _describe_recode(params: RecodeParams, change: Change) -> str:
    d = change.details
    var = params.variable
    if d.get("kind") == "bands":
        text = f"{var} was grouped into {len(d['bands'])} bands ({_short_list([b['label'] for b in d['bands']])})."
        if d.get("outside"):
            text += f" {d['outside']} values outside all bands became missing."
        return text
    if d.get("kind") == "hierarchy":
        return (
            f"{var} was generalised to level {d['level']} of {d['height']} of the supplied hierarchy; "
            f"{d['categories']} categories remain."
        )
    parts = []
    for m in d.get("merges", []):
        label = f" ({m['label']})" if m.get("label") else ""
        parts.append(f"{', '.join(map(str, m['from']))} into {m['into']}{label}")
    if not parts:
        return f"{var} was left unchanged by the category merge (none of its codes occur)."
    return f"Categories of {var} were merged: {'; '.join(parts)}."


@register("recode", RecodeParams, _describe_recode)
def _recode_step(ds: Dataset, params: RecodeParams, ctx: StepContext) -> MethodResult:
    return global_recode(ds, **params.kwargs())


class TopBottomParams(StepParams):
    """``topcode``/``bottomcode``: values beyond ``value`` become ``replacement`` (default: value)."""

    variable: str
    value: float
    replacement: float | None = None
    label: str | None = None

    def reads(self, ctx: StepContext) -> list[str]:
        return [self.variable]


def _describe_tb(kind: str):
    def describe(params: TopBottomParams, change: Change) -> str:
        p = change.params
        where = "above" if kind == "top" else "below"
        n = change.details.get("n_coded", 0)
        return (
            f"Values of {params.variable} {where} {p['value']} were set to {p['replacement']} "
            f"({kind} coding; {n} records)."
        )

    return describe


@register("topcode", TopBottomParams, _describe_tb("top"))
def _topcode_step(ds: Dataset, params: TopBottomParams, ctx: StepContext) -> MethodResult:
    return top_bottom_code(ds, kind="top", **params.model_dump())


@register("bottomcode", TopBottomParams, _describe_tb("bottom"))
def _bottomcode_step(ds: Dataset, params: TopBottomParams, ctx: StepContext) -> MethodResult:
    return top_bottom_code(ds, kind="bottom", **params.model_dump())
