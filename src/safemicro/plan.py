"""The release plan: variable roles, disclosure scenario, risk targets and steps.

A plan is a YAML file validated by pydantic models that forbid unknown fields, so a typo
(``kyes:``) is an error and not a silently ignored setting::

    roles:
      direct_ids: [head_name, phone]
      keys: [camp, sex, age]
      numeric_keys: [income]
      sensitive: [protection_incident]
      weight: weight
      household: hhid
    scenario:
      description: Nosy neighbour in the camp; distribution lists as auxiliary data.
      tier: suf
    targets: {k: 3, max_global_risk: 0.01}
    steps:
      - remove_direct_ids: {}

>>> plan = Plan.from_yaml("roles: {keys: [sex, age], weight: w}")
>>> plan.roles.keys
['sex', 'age']
>>> plan.check_columns(["sex", "age", "w"])

Steps are kept as written (a list of single-key mappings ``{method: {params}}``); the
anonymization methods validate their own parameters.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from safemicro.atomic import write_text
from safemicro.errors import SafemicroError

Tier = Literal["puf", "suf", "enclave"]

# Pairs of roles one variable may hold at the same time; every other pair is a conflict.
_COMPATIBLE = {
    frozenset({"key", "strata"}),
    frozenset({"key", "cluster"}),
    frozenset({"ghost", "strata"}),
    frozenset({"ghost", "cluster"}),
    frozenset({"ghost", "sensitive"}),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _distinct(values: list[str], what: str) -> list[str]:
    seen: set[str] = set()
    for v in values:
        if v in seen:
            raise ValueError(f"{v!r} is listed twice in {what}")
        seen.add(v)
    return values


class Roles(_Strict):
    """Which variable plays which part. Unlisted variables are 'other'."""

    direct_ids: list[str] = Field(default_factory=list, description="removed before release")
    keys: list[str] = Field(default_factory=list, description="categorical quasi-identifiers")
    numeric_keys: list[str] = Field(default_factory=list, description="continuous quasi-identifiers")
    sensitive: list[str] = Field(default_factory=list)
    weight: str | None = None
    household: str | None = None
    strata: str | None = None
    cluster: str | None = None
    ghost: dict[str, str] = Field(default_factory=dict, description="{ghost variable: the key it is suppressed with}")
    household_level: list[str] = Field(default_factory=list, description="keys measured at household level")

    @field_validator("direct_ids", "keys", "numeric_keys", "sensitive", "household_level")
    @classmethod
    def _no_duplicates(cls, v: list[str], info: Any) -> list[str]:
        return _distinct(v, info.field_name)

    def assignments(self) -> list[tuple[str, str]]:
        """(variable, role) pairs, in plan order; household_level is a modifier, not a role."""
        out: list[tuple[str, str]] = []
        out += [(v, "direct_id") for v in self.direct_ids]
        out += [(v, "key") for v in self.keys]
        out += [(v, "numeric_key") for v in self.numeric_keys]
        out += [(v, "sensitive") for v in self.sensitive]
        for role in ("weight", "household", "strata", "cluster"):
            value = getattr(self, role)
            if value is not None:
                out.append((value, role))
        out += [(v, "ghost") for v in self.ghost]
        return out

    def role_of(self, name: str) -> list[str]:
        """The roles of `name` (empty list: 'other')."""
        return [r for v, r in self.assignments() if v == name]

    def check_columns(self, columns: list[str], source: str | os.PathLike[str] | None = None) -> None:
        """Raise a :class:`SafemicroError` naming the first role whose column the data lacks.

        The hint prefers a column differing only in case, then the closest spelling.
        """
        have = set(columns)
        places = [(v, f"roles.{_ROLE_FIELD[r]}") for v, r in self.assignments()]
        places += [(v, "roles.ghost (linked key)") for v in self.ghost.values()]
        places += [(v, "roles.household_level") for v in self.household_level]
        for var, where in places:
            if var not in have:
                raise SafemicroError(
                    f"{where} names {var!r}, which is not a column of the data{column_hint(var, columns)}",
                    file=None if source is None else str(source),
                    column=var,
                )

    @model_validator(mode="after")
    def _consistent(self) -> Roles:
        roles: dict[str, list[str]] = {}
        for var, role in self.assignments():
            roles.setdefault(var, []).append(role)
        for var, rs in roles.items():
            for i, a in enumerate(rs):
                for b in rs[i + 1 :]:
                    if frozenset({a, b}) not in _COMPATIBLE:
                        raise ValueError(f"variable {var!r} cannot be both {a} and {b}")
        all_keys = set(self.keys) | set(self.numeric_keys)
        for ghost, linked in self.ghost.items():
            if linked not in all_keys:
                raise ValueError(f"ghost variable {ghost!r} is linked to {linked!r}, which is not a key")
        for var in self.household_level:
            if var not in all_keys:
                raise ValueError(f"household_level lists {var!r}, which is not a key or numeric key")
        if self.household_level and self.household is None:
            raise ValueError("household_level is set but roles.household (the household id) is not")
        return self


class Scenario(_Strict):
    """The disclosure scenario in plain words and the release tier."""

    description: str = ""
    tier: Tier = "suf"


class Targets(_Strict):
    """Risk thresholds the released file must meet."""

    k: int = Field(3, ge=1)
    max_global_risk: float | None = Field(0.01, ge=0.0, le=1.0)
    max_individual_risk: float | None = Field(None, ge=0.0, le=1.0)
    combs: list[int] = Field(
        default_factory=list, description="k on every combination of this many keys, within roles.strata (kAnon combs)"
    )
    risky_cells: list[int] = Field(
        default_factory=list, description="mu-Argus unsafe-cell thresholds for tables of 1, 2, ... keys (riskyCells)"
    )
    t_closeness: float | None = Field(None, ge=0.0, le=1.0, description="largest EMD of a key group's sensitive values")
    delta_disclosure: float | None = Field(None, ge=0.0, description="largest |ln(q/p)| of a sensitive value")
    beta_likeness: float | None = Field(
        None, ge=0.0, description="largest relative gain (q - p)/p (basic and enhanced)"
    )
    max_sensitive_share: float | None = Field(None, ge=0.0, le=1.0, description="(alpha,k)-anonymity's alpha")
    delta_min: float | None = Field(None, ge=0.0, le=1.0, description="δ-presence lower bound (with a population)")
    delta_max: float | None = Field(None, ge=0.0, le=1.0, description="δ-presence upper bound (with a population)")
    max_rmd_risk: float | None = Field(
        None, ge=0.0, le=1.0, description="robust interval disclosure (dRiskRMD wrisk1) of the numeric keys"
    )


class AttributeDisclosure(_Strict):
    """How the distance between a key group's sensitive values and the file's is measured."""

    distance: dict[str, Literal["equal", "ordered", "hierarchical"]] = Field(
        default_factory=dict, description="per sensitive variable (default: ordered for numbers, equal for text)"
    )
    hierarchy: dict[str, Any] = Field(
        default_factory=dict, description="per sensitive variable: {value: [level 1, ...]}, rows, or a CSV path"
    )


class ModelRiskOptions(_Strict):
    """Opt-in model-based risk in assess: modRisk τ1/τ2, population uniqueness, exact risk."""

    enabled: bool = False
    interactions: Literal[1, 2] = Field(1, description="1: main effects; 2: also all two-way interactions")
    methods: list[Literal["default", "CE", "PML", "weightedLLM", "IPF"]] = Field(
        default_factory=list, description="modRisk estimators reported beside the default: CE, PML, weightedLLM, IPF"
    )
    sampling_fraction: float | None = Field(None, gt=0.0, le=1.0, description="default: records / sum of weights")
    qual: float = Field(1.0, gt=0.0, description="sdcMicro indivRisk's final correction factor (exact risk)")


class Indicator(_Strict):
    """A statistic users will compute, compared before/after with design-based CIs."""

    variable: str
    kind: Literal["mean", "proportion", "total"] = "mean"
    value: Any = Field(None, description="category for a proportion (None: every category)")
    by: str | None = Field(None, description="domain variable: one estimate per category")
    label: str | None = None


class Regression(_Strict):
    """A model users will fit; coefficients are compared before/after."""

    outcome: str
    predictors: list[str] = Field(min_length=1)
    kind: Literal["linear", "logistic"] = "linear"
    weighted: bool = True


class Utility(_Strict):
    """The key uses of the data (Practice Guide step 5): what utility is measured on."""

    indicators: list[Indicator] = Field(default_factory=list)
    regressions: list[Regression] = Field(default_factory=list)
    tables: list[list[str]] = Field(default_factory=list, description="variable pairs whose cross-tables are compared")

    def variables(self) -> list[str]:
        names: list[str] = []
        for ind in self.indicators:
            names += [ind.variable] + ([ind.by] if ind.by else [])
        for reg in self.regressions:
            names += [reg.outcome, *reg.predictors]
        for t in self.tables:
            names += list(t)
        return list(dict.fromkeys(names))


class Release(_Strict):
    """Who approves the release and what it is: fills the disclosure risk assessment form."""

    title: str = ""
    unit: str = Field("", description="statistical unit, e.g. 'person within household'")
    sampling: str = Field("", description="sample design / sampling fraction in words")
    reviewer: str = ""
    date: str = Field("", description="review date (ISO); also stamped into Stata/SPSS headers")
    residual_risk: str = Field("", description="the curator's residual-risk statement")
    copies: list[Literal["parquet", "csv", "dta", "sav"]] = Field(
        default_factory=lambda: ["parquet"],
        description="copies of the released file beside the one in the input's format (a CSV only when asked)",
    )

    @field_validator("copies")
    @classmethod
    def _copies_once(cls, v: list[str]) -> list[str]:
        return _distinct(v, "release.copies")


class Plan(_Strict):
    """A release plan. Build it with :func:`load_plan` or :meth:`Plan.from_yaml`."""

    roles: Roles = Field(default_factory=Roles)
    scenario: Scenario = Field(default_factory=Scenario)
    targets: Targets = Field(default_factory=Targets)
    alpha: float = Field(1.0, ge=0.0, le=1.0, description="weight of a missing value as a wildcard")
    utility: Utility = Field(default_factory=Utility)
    attribute_disclosure: AttributeDisclosure = Field(default_factory=AttributeDisclosure)
    model_risk: ModelRiskOptions = Field(default_factory=ModelRiskOptions)
    release: Release = Field(default_factory=Release)
    steps: list[dict[str, dict[str, Any]]] = Field(default_factory=list)
    seed: int | None = None
    population: str | None = Field(
        None,
        description="file holding the population the data was drawn from (k-map, δ-presence); relative to the plan",
    )
    study: dict[str, Any] = Field(
        default_factory=dict,
        description="study description for the DDI codebook (checked by `safemicro document`)",
    )

    @field_validator("steps", mode="before")
    @classmethod
    def _steps_shape(cls, v: Any) -> Any:
        if v is None:
            return []
        if not isinstance(v, list):
            raise ValueError("steps must be a list of {method: {parameters}} mappings")
        out = []
        for i, step in enumerate(v):
            if isinstance(step, str):  # "- remove_direct_ids" with no parameters
                step = {step: {}}
            if not isinstance(step, dict) or len(step) != 1:
                raise ValueError(f"step {i + 1} must be a single-key mapping {{method: {{parameters}}}}, got {step!r}")
            ((name, params),) = step.items()
            if not isinstance(name, str):
                raise ValueError(f"step {i + 1}: the method name must be text, got {name!r}")
            if params is None:
                params = {}
            if not isinstance(params, dict):
                raise ValueError(f"step {i + 1} ({name}): parameters must be a mapping, got {params!r}")
            out.append({name: params})
        return out

    @property
    def source(self) -> str | None:
        """The file the plan was read from (None for a plan built in code), for error
        messages. Kept beside the fields, so two equal plans from two files compare equal."""
        return self.__dict__.get("_plan_file")

    # -- YAML ---------------------------------------------------------------------------

    @classmethod
    def from_yaml(cls, text: str, source: str | os.PathLike[str] | None = None) -> Plan:
        """Parse and validate a plan; errors name `source`, the line or the field."""
        src = None if source is None else str(source)
        data = parse_yaml(text, src)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise SafemicroError(
                f"a plan must be a mapping of fields (roles, scenario, ...), got {type(data).__name__}",
                file=src,
            )
        try:
            plan = cls.model_validate(data)
        except ValidationError as exc:
            raise validation_error(exc, "plan", src, model=cls) from None
        object.__setattr__(plan, "_plan_file", src)  # not a field: not validated, dumped or compared
        return plan

    def to_yaml(self) -> str:
        """The plan as YAML (field order as in the model; loads back to an equal plan)."""
        data = self.model_dump(mode="python")
        import yaml  # here, not at the top: `safemicro assess --keys ...` reads no YAML

        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)

    # -- checks against data --------------------------------------------------------------

    def variables(self) -> list[str]:
        """Every variable the plan names, in plan order, each once."""
        names = [v for v, _ in self.roles.assignments()]
        names += list(self.roles.ghost.values()) + list(self.roles.household_level)
        return list(dict.fromkeys(names))

    def check_columns(self, columns: list[str], source: str | os.PathLike[str] | None = None) -> None:
        """Raise a :class:`SafemicroError` if the plan names a column the data lacks."""
        self.roles.check_columns(columns, source)


_ROLE_FIELD = {
    "direct_id": "direct_ids",
    "key": "keys",
    "numeric_key": "numeric_keys",
    "sensitive": "sensitive",
    "weight": "weight",
    "household": "household",
    "strata": "strata",
    "cluster": "cluster",
    "ghost": "ghost",
}


def _loc(loc: tuple[Any, ...], what: str) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        else:
            parts.append(("." if parts else "") + str(p))
    return "".join(parts) or f"({what})"


def parse_yaml(text: str, source: str | None) -> Any:
    """YAML text to Python; a syntax error names ``source``, the line and the column."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        if mark is not None:
            raise SafemicroError(
                f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {problem}",
                file=source,
            ) from None
        raise SafemicroError(f"invalid YAML: {problem}", file=source) from None


def _fields_at(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> list[str]:
    """The field names of the (nested) model that holds ``loc``'s last part."""
    for part in loc[:-1]:
        if model is None or isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return []
        candidates = [field.annotation, *get_args(field.annotation)]
        candidates += [a for c in list(candidates) for a in get_args(c)]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return list(model.model_fields) if model is not None else []


def column_hint(name: str, columns: list[str]) -> str:
    """`` (did you mean 'Age'?)`` for a column differing from ``name`` only in case, else for
    the closest spelling, or ``""``."""
    hint = [c for c in columns if c.lower() == name.lower()]
    hint = hint or difflib.get_close_matches(name, list(columns), n=1)
    return f" (did you mean {hint[0]!r}?)" if hint else ""


def did_you_mean(word: str, choices: list[str]) -> str:
    """`` (did you mean 'keys'?)`` for the closest choice, or ``""``."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def validation_error(
    exc: ValidationError, what: str, source: str | None, *, model: type[BaseModel] | None = None
) -> SafemicroError:
    """One error naming every invalid field of a ``what`` (plan, study description, ...);
    with ``model``, an unknown field gets the closest known one ("did you mean")."""
    msgs = []
    fields = []
    for err in exc.errors(include_url=False):
        loc = _loc(tuple(err.get("loc", ())), what)
        fields.append(loc)
        msg = err.get("msg", "invalid")
        if err.get("type") == "extra_forbidden":
            loc_t = tuple(err.get("loc", ()))
            hint = did_you_mean(loc_t[-1], _fields_at(model, loc_t)) if loc_t and model is not None else ""
            msg = f"unknown field{hint or ' (check the spelling)'}"
        msg = msg.removeprefix("Value error, ")
        msgs.append(f"{loc}: {msg}")
    error = SafemicroError(f"invalid {what}: " + "; ".join(msgs), file=source)
    error.fields = fields  # type: ignore[attr-defined]
    return error


def read_text_file(p: Path, missing: str, unreadable: str) -> str:
    """The UTF-8 text of a YAML file; ``missing`` or ``unreadable: <reason>`` names it when it cannot be read."""
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SafemicroError(missing, file=str(p)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SafemicroError(f"{unreadable}: {exc}", file=str(p)) from None


def load_plan(path: str | os.PathLike[str]) -> Plan:
    """Read and validate a plan file."""
    p = Path(path)
    return Plan.from_yaml(read_text_file(p, "plan file not found", "cannot read plan"), source=p)


def save_plan(plan: Plan, path: str | os.PathLike[str]) -> None:
    """Write the plan as YAML atomically (temporary file in the same folder, then rename)."""
    write_text(path, plan.to_yaml())


__all__ = [
    "AttributeDisclosure",
    "Indicator",
    "Plan",
    "Regression",
    "Release",
    "Roles",
    "Scenario",
    "Targets",
    "Tier",
    "Utility",
    "load_plan",
    "save_plan",
]
