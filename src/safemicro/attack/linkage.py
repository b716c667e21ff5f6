"""Linkage (mosaic) attack: can an intruder holding other files find people in the release?

The intruder holds one or more *auxiliary* files — a registration list, a distribution list,
another survey — with some columns in common with the released file, and tries to link each
auxiliary person to the released record that is theirs. Three ways of linking:

* ``exact``: candidates are the released records that agree with the auxiliary record on
  every shared column; a missing value on either side (a suppressed cell, an unknown fact)
  is a wildcard, as in sdcMicro's frequency counts. The intruder picks one candidate at
  random, so a claim is right with probability 1/(number of candidates). Vectorised on the
  key-table codes: one join per pair of missing-value patterns, never a loop over records.
* ``distance``: Gower-like distance (categorical: 0 if equal, 1 if not; numeric: absolute
  difference over the range of both files; missing: 0), averaged over the columns; the
  intruder claims one of the nearest released records. Blocked on exact columns.
* ``fellegi_sunter``: probabilistic record linkage. Agreement patterns of candidate pairs
  (within blocks) are counted on distinct rows; the m- and u-probabilities of agreement per
  column are estimated by EM under conditional independence; each pair gets the likelihood
  ratio Π(m/u)^γ((1−m)/(1−u))^(1−γ), and the confidence of the best candidate is its
  posterior share, with the no-match alternative weighted by the estimated match prior.

Several auxiliary files are combined on the intruder's identifier first (the *mosaic*):
what one list lacks another may hold.

Scoring uses the true identities (for evaluation only; the intruder never sees them): per
auxiliary person, whether the true record is among the best candidates, giving the
expected number of correct claims, the **true match rate** (correct claims over auxiliary
people who are in the release), the **precision** of claims, and the people
**re-identified** with confidence at least ``threshold``. The same is computed the other
way round, from each released record to the listed people (``release_side``): the
expected number of released records re-identified, the quantity sdcMicro's global risk
estimates from frequencies.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from safemicro.attack.household import household_attack
from safemicro.attack.record_linkage.encoding import LinkOutcome, _encode, _truth_rows
from safemicro.attack.record_linkage.exact import _exact
from safemicro.attack.record_linkage.inputs import _frame, _source, check_inputs, combine_auxiliary
from safemicro.attack.record_linkage.pairwise import CHUNK as CHUNK
from safemicro.attack.record_linkage.pairwise import _blocks, _pairwise, fellegi_sunter_em
from safemicro.attack.stats import Rate, Risk, residual_risk, wilson
from safemicro.errors import SafemicroError

__all__ = [
    "LinkageEvaluator",
    "LinkOutcome",
    "combine_auxiliary",
    "link_records",
    "METHODS",
    "check_inputs",
    "fellegi_sunter_em",
]

METHODS = ("exact", "distance", "fellegi_sunter")
FK_CLASSES = ((1, 1, "1"), (2, 2, "2"), (3, 4, "3-4"), (5, 9, "5-9"), (10, None, "10+"))


def link_records(
    release: pl.DataFrame,
    aux: pl.DataFrame,
    on: Sequence[str],
    *,
    truth_rows: np.ndarray | None = None,
    method: str = "exact",
    numeric: Sequence[str] = (),
    block: Sequence[str] = (),
    tolerance: float = 0.0,
    max_distance: float | None = None,
) -> tuple[LinkOutcome, dict[str, Any]]:
    """Link every auxiliary record to the release on ``on`` (see the module docstring).

    ``truth_rows``: per auxiliary record the row of its true released record (-1 if none).
    Returns the per-record outcome and method details (m/u probabilities for Fellegi–Sunter).
    """
    if method not in METHODS:
        raise SafemicroError(f"unknown linkage method {method!r}; use one of {', '.join(METHODS)}")
    truth = np.full(aux.height, -1, dtype=np.int64) if truth_rows is None else np.asarray(truth_rows, dtype=np.int64)
    enc = _encode(release, aux, list(on), list(numeric) if method != "exact" else [])
    if method == "exact":
        return _exact(enc, truth), {}
    r_block, a_block = _blocks(release, aux, list(block))
    return _pairwise(enc, truth, r_block, a_block, method, tolerance=tolerance, max_distance=max_distance)


def _default_numeric(release: pl.DataFrame, on: Sequence[str]) -> list[str]:
    """Columns compared as numbers by the distance methods: floats with fractions or more
    than 20 distinct values; other columns are categories."""
    out = []
    for name in on:
        s = release.get_column(name)
        if s.dtype.is_numeric() and s.dtype != pl.Boolean and s.n_unique() > 20:
            out.append(name)
    return out


def _fk_class(fk: np.ndarray) -> np.ndarray:
    labels = np.full(len(fk), "", dtype=object)
    for lo, hi, label in FK_CLASSES:
        sel = (fk >= lo) if hi is None else (fk >= lo) & (fk <= hi)
        labels[sel] = label
    return labels


class LinkageEvaluator:
    """Linkage attack on a released file with one or more auxiliary files (the mosaic).

    The scenario: an intruder holds lists of named people — a registration extract, a
    distribution list, another survey — that share some columns with the released file
    (site, household size, age, sex, ...). Joining the lists on the names, they try to find
    each listed person's record in the release, by exact agreement, by closeness or by
    probabilistic record linkage. The release is risky when many claims are right.

    True identities (``truth``: the identity column of the auxiliary files, and the same
    identities for the released records, as a column or as ``release_ids``) are used for
    scoring only. The baseline is an intruder who picks a released record at random.
    With ``household`` and ``aux_household`` (the household columns of the two files) the
    intruder also knows each listed household's whole composition and looks for released
    households of that size whose members all fit (see
    :func:`safemicro.attack.household.household_attack`).

    >>> ev = LinkageEvaluator(release, aux, truth="person_id").evaluate()   # doctest: +SKIP
    >>> ev.results()["true_match_rate"], ev.risk()                          # doctest: +SKIP
    """

    def __init__(
        self,
        release: Any,
        auxiliary: Any,
        *,
        truth: str,
        on: Sequence[str] | None = None,
        release_ids: Sequence[Any] | pl.Series | None = None,
        method: str = "exact",
        block: Sequence[str] = (),
        numeric: Sequence[str] | None = None,
        tolerance: float = 0.0,
        max_distance: float | None = None,
        threshold: float = 0.5,
        by: Sequence[str] = (),
        household: str | None = None,
        aux_household: str | None = None,
    ) -> None:
        if method not in METHODS:
            raise SafemicroError(f"unknown linkage method {method!r}; use one of {', '.join(METHODS)}")
        if not 0.0 < threshold <= 1.0:
            raise SafemicroError(f"threshold must lie in (0, 1], got {threshold}")
        self.release_file = _source(release)
        self.release = _frame(release, "released")
        auxes = list(auxiliary) if isinstance(auxiliary, (list, tuple)) else [auxiliary]
        if not auxes:
            raise SafemicroError("at least one auxiliary file is needed")
        self.aux_files = [_source(a) for a in auxes]
        frames = [_frame(a, "auxiliary") for a in auxes]
        for f, file in zip(frames, self.aux_files):
            if f.height == 0:
                raise SafemicroError("the auxiliary file has no records", file=file)
            if truth not in f.columns:
                raise SafemicroError("the auxiliary file has no identity column", file=file, column=truth)
        self.files_used = [[c for c in f.columns if c != truth and c in self.release.columns] for f in frames]
        self.aux = frames[0] if len(frames) == 1 else combine_auxiliary(frames, truth, files=self.aux_files)
        self.truth = truth
        not_keys = {truth, household, aux_household} - {None}
        if on is None:
            on = [c for c in self.aux.columns if c not in not_keys and c in self.release.columns]
        self.on = list(on)
        for c in self.on:
            if c in not_keys:
                raise SafemicroError("identity and household columns cannot be linking columns", column=c)
        check_inputs(
            self.release,
            self.aux,
            self.on,
            release_file=self.release_file,
            aux_file=self.aux_files[0] if len(frames) == 1 else None,
        )
        if release_ids is None:
            if truth not in self.release.columns:
                raise SafemicroError(
                    "the released file has no identity column for scoring (give the file the release "
                    "bundle was made from: --original, or release_ids=release_identities(bundle, original, id))",
                    file=self.release_file,
                    column=truth,
                )
            ids = self.release.get_column(truth)
        else:
            ids = pl.Series(truth, release_ids) if not isinstance(release_ids, pl.Series) else release_ids
            if len(ids) != self.release.height:
                raise SafemicroError(
                    f"{len(ids)} identities for {self.release.height} released records", file=self.release_file
                )
        self.release_ids = ids.rename(truth)
        self.method = method
        self.block = list(block)
        for b in self.block:
            for f, file in ((self.release, self.release_file), (self.aux, None)):
                if b not in f.columns:
                    raise SafemicroError("no such blocking column", file=file, column=b)
        self.numeric = list(numeric) if numeric is not None else _default_numeric(self.release, self.on)
        self.tolerance = tolerance
        self.max_distance = max_distance
        self.threshold = threshold
        self.by = list(by)
        for b in self.by:
            if b not in self.aux.columns:
                raise SafemicroError("no such column in the auxiliary file", column=b)
        if (household is None) != (aux_household is None):
            raise SafemicroError("the household attack needs the household column of both files")
        if household is not None:
            if household not in self.release.columns:
                raise SafemicroError(
                    "no such household column in the released file", file=self.release_file, column=household
                )
            if aux_household not in self.aux.columns:
                raise SafemicroError("no such household column in the auxiliary file", column=aux_household)
        self.household, self.aux_household = household, aux_household
        self._evaluated = False

    def _run(self, on: Sequence[str]) -> tuple[LinkOutcome, dict[str, Any]]:
        return link_records(
            self.release,
            self.aux,
            on,
            truth_rows=self.truth_rows_,
            method=self.method,
            numeric=[c for c in self.numeric if c in on],
            block=self.block,
            tolerance=self.tolerance,
            max_distance=self.max_distance,
        )

    def evaluate(self, *, drivers: bool = True) -> LinkageEvaluator:
        """Run the attack; with ``drivers`` also once without each linking column (which
        columns the successful links depend on)."""
        self.truth_rows_ = _truth_rows(self.release_ids, self.aux.get_column(self.truth), self.aux.height)
        self.outcome_, self.details_ = self._run(self.on)
        # the other direction: each released record against the listed people
        back = _truth_rows(self.aux.get_column(self.truth), self.release_ids, self.release.height)
        self.reverse_, _ = link_records(
            self.aux,
            self.release,
            self.on,
            truth_rows=back,
            method=self.method,
            numeric=[c for c in self.numeric if c in self.on],
            block=self.block,
            tolerance=self.tolerance,
            max_distance=self.max_distance,
        )
        self.drivers_: list[dict[str, Any]] = []
        base = self.outcome_.summary(self.threshold)
        if drivers and len(self.on) > 1:
            for col in self.on:
                rest = [c for c in self.on if c != col]
                s = self._run(rest)[0].summary(self.threshold)
                self.drivers_.append(
                    {
                        "variable": col,
                        "correct_lost": base["expected_correct"] - s["expected_correct"],
                        "reidentified_lost": base["reidentified"] - s["reidentified"],
                        "true_match_rate_without": s["true_match_rate"],
                    }
                )
            self.drivers_.sort(key=lambda d: -d["correct_lost"])
        self.households_ = None
        if self.household is not None:
            truth = "__safemicro_truth"
            rel = self.release.select(self.household, *self.on).with_columns(self.release_ids.alias(truth))
            aux = self.aux.select(self.aux_household, *self.on, pl.col(self.truth).alias(truth))
            if self.aux_household == self.household:
                aux = aux.rename({self.aux_household: "__safemicro_listed_hh"})
            self.households_ = household_attack(
                rel,
                aux,
                self.on,
                household=self.household,
                truth=truth,
                intruder_household="__safemicro_listed_hh"
                if self.aux_household == self.household
                else self.aux_household,
            )
        self._evaluated = True
        return self

    def _check(self) -> None:
        if not self._evaluated:
            raise RuntimeError("call evaluate() first")

    def risk(self, confidence: float = 0.95) -> Risk:
        """True match rate among auxiliary people who are in the release, with its Wilson
        interval (no control set: the records behind a release are the people in it)."""
        self._check()
        o = self.outcome_
        n_in = int(o.in_release.sum())
        if n_in == 0:
            return Risk(0.0, (0.0, 0.0))
        return residual_risk(wilson(o.expected_correct[o.in_release].sum(), n_in, confidence), None)

    def baseline(self, confidence: float = 0.95) -> Rate | None:
        """Random guess: one released record drawn at random is the right one with 1/N."""
        self._check()
        n_in = int(self.outcome_.in_release.sum())
        return wilson(n_in / self.release.height, n_in, confidence) if n_in else None

    def groups(self) -> list[dict[str, Any]]:
        """Re-identification by group of auxiliary people: by the frequency class of their
        released key (how many released records share it) and by each ``by`` column."""
        self._check()
        o = self.outcome_
        rows = np.flatnonzero(o.in_release)
        out: list[dict[str, Any]] = []
        if len(rows) == 0:
            return out
        correct = o.expected_correct
        sure = o.claims & (o.confidence >= self.threshold - 1e-12)
        from safemicro.keys import build_key_table

        kt = build_key_table(self.release, self.on)
        fk = kt.record_fk()[self.truth_rows_[rows]]
        labels = {"released key frequency (fk)": _fk_class(fk)}
        for b in self.by:
            labels[b] = self.aux.get_column(b).cast(pl.String).fill_null("(missing)").to_numpy()[rows]
        for what, lab in labels.items():
            order = [c[2] for c in FK_CLASSES] if what.startswith("released key") else sorted(set(lab.tolist()))
            for g in order:
                sel = rows[lab == g]
                if len(sel) == 0:
                    continue
                out.append(
                    {
                        "by": what,
                        "group": str(g),
                        "n": int(len(sel)),
                        "true_match_rate": float(correct[sel].mean()),
                        "reidentified": int(sure[sel].sum()),
                    }
                )
        return out

    def release_side(self, confidence: float = 0.95) -> dict[str, Any]:
        """The attack seen from the released records (the intruder names released records):
        per record, the listed people compatible with it; a pick among them is right with
        1/(their number) when the record's person is listed. ``expected_correct`` is the
        expected number of released records re-identified — what sdcMicro's global risk
        (Σ 1/F_k) estimates when the list covers the population."""
        self._check()
        r = self.reverse_.summary(self.threshold, confidence)
        n = self.release.height
        one = self.reverse_.n_best == 1
        return {
            "n_released": n,
            "n_listed_in_release": r["n_in_release"],
            "expected_correct": r["expected_correct"],
            "reidentification_rate": r["expected_correct"] / n,
            "reidentification_rate_ci": list(wilson(r["expected_correct"], n, confidence).ci),
            "n_claims": r["n_claims"],
            "precision": r["precision"],
            "reidentified": r["reidentified"],
            "reidentified_correct": r["reidentified_correct"],
            "reidentified_precision": r["reidentified_precision"],
            "one_candidate": int(one.sum()),
            "one_candidate_correct": int((one & self.reverse_.true_in_best).sum()),
        }

    def results(self, confidence: float = 0.95) -> dict[str, Any]:
        """JSON-ready summary: rates, re-identifications, baseline, drivers, groups, and the
        same attack seen from the released records (``release_side``)."""
        self._check()
        s = self.outcome_.summary(self.threshold, confidence)
        r = self.risk(confidence)
        base = self.baseline(confidence)
        return {
            "kind": "linkage",
            **s,
            "linking_columns": self.on,
            "auxiliary_files": [{"file": f, "columns": cols} for f, cols in zip(self.aux_files, self.files_used)],
            "numeric_columns": self.numeric if self.method != "exact" else [],
            "block": self.block,
            "risk": r.value,
            "ci": list(r.ci),
            "baseline_rate": None if base is None else base.to_dict(),
            "details": self.details_,
            "drivers": self.drivers_,
            "groups": self.groups(),
            "release_side": self.release_side(confidence),
            "households": self.households_,
        }
