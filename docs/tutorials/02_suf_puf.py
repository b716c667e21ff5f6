# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A scientific use file, then a nested public use file
#
# *About 20 minutes.* The example survey needs two releases: a **scientific use file** (SUF)
# for researchers under a licence, and a **public use file** (PUF) anyone can download. The
# PUF is made *from the SUF bundle*, so that someone holding both learns nothing from
# combining them (nested tiers). You will
#
# 1. anonymize the raw file with the SUF plan and check its targets,
# 2. compare the key indicators before and after (utility, with confidence intervals),
# 3. write the SUF bundle and derive the PUF from it, and
# 4. see what the PUF costs in utility compared with the SUF.

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

import safemicro
import safemicro.io as sio
from safemicro.examples import SURVEY_PLAN, SURVEY_PUF_PLAN, generate_survey
from safemicro.release import verify_bundle

work = Path(tempfile.mkdtemp(prefix="tutorial2-"))
sio.write(generate_survey(), work / "survey.dta")  # 2 000 households, Stata with labels

# %% [markdown]
# ## 1. The SUF plan
#
# A release plan is YAML: roles, scenario, targets, the key uses of the data, and the steps.
# Read the steps of the example's SUF plan:

# %%
text = Path(SURVEY_PLAN).read_text()
print(text[text.index("targets:") : text.index("alpha:")])
print(text[text.index("steps:") :])

# %%
suf = safemicro.anonymize(work / "survey.dta", SURVEY_PLAN)  # nothing is written yet
before, after = suf.report["risk_before"], suf.report["risk_after"]
print("targets met:", suf.targets_met)
pd.DataFrame(
    {
        "raw": [before["k_anonymity"]["violations"]["3"], before["global_risk"]["percent"], before["individual_risk"]["max"]],
        "SUF": [after["k_anonymity"]["violations"]["3"], after["global_risk"]["percent"], after["individual_risk"]["max"]],
    },
    index=["records violating 3-anonymity", "global risk (%)", "max individual risk"],
).round(3)

# %% [markdown]
# ## 2. Utility: the key indicators before and after
#
# The plan lists the indicators the file is used for. Each is estimated on the raw and the
# released file with a design-based 95 % confidence interval (strata and clusters).

# %%
def indicators(release):
    rows = []
    for i in release.report["utility"]["indicators"]:
        name = i["indicator"] if i.get("domain") is None else f"{i['indicator'][:20]}… [{i['domain_label'] or i['domain']}]"
        rows.append({"indicator": name, "before": i["before"]["estimate"], "after": i["after"]["estimate"],
                     "lower_before": i["before"]["lower"], "upper_before": i["before"]["upper"],
                     "lower_after": i["after"]["lower"], "upper_after": i["after"]["upper"],
                     "ci_overlap": i["ci_overlap"]})
    return pd.DataFrame(rows)

suf_utility = indicators(suf)
suf_utility[["indicator", "before", "after", "ci_overlap"]].round(3)

# %%
def plot_cis(table, title):
    """Each estimate and CI divided by the 'before' estimate: 1 means unchanged."""
    fig, ax = plt.subplots(figsize=(7.5, 0.42 * len(table) + 1.2))
    y = list(range(len(table)))
    base = table["before"]
    for shift, side, colour in ((-0.15, "before", "#4a6c8c"), (0.15, "after", "#d08000")):
        ax.errorbar(table[side] / base, [v + shift for v in y],
                    xerr=[(table[side] - table[f"lower_{side}"]) / base, (table[f"upper_{side}"] - table[side]) / base],
                    fmt="o", color=colour, capsize=3, label=side)
    ax.axvline(1, color="#999", lw=0.8)
    ax.set_yticks(y, table["indicator"], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("estimate relative to the 'before' estimate, with 95 % CI")
    ax.legend(frameon=False, loc="lower right")
    ax.set_title(title)
    plt.show()

plot_cis(suf_utility, "Raw file vs SUF: estimates with 95 % CIs")

# %% [markdown]
# A *CI overlap* near 1 means a user of the SUF reaches the same conclusion as one with the
# raw data. Where did the changes come from? Every step reports the cells it changed:

# %%
pd.DataFrame([{"step": st["name"], **{k: v for k, v in (st.get("changed") or {}).items()}} for st in suf.report["steps"]]).fillna(0)

# %% [markdown]
# ## 3. Write the SUF bundle, derive the PUF from it

# %%
suf.write(work / "suf")
print(sorted(p.name for p in (work / "suf").iterdir()))
problems = verify_bundle(work / "suf")  # the problems found: none
print("SHA256SUMS:", "every file verifies" if not problems else problems)

# %%
text = Path(SURVEY_PUF_PLAN).read_text()
print(text[text.index("steps:") : text.index("seed:")])
puf = safemicro.anonymize(work / "suf", SURVEY_PUF_PLAN)
b, a = puf.report["risk_before"], puf.report["risk_after"]
print(f"SUF -> PUF: 5-anonymity violations {b['k_anonymity']['violations']['5']:,} -> {a['k_anonymity']['violations']['5']:,}; "
      f"global risk {b['global_risk']['percent']:.3f} % -> {a['global_risk']['percent']:.3f} %; targets met: {puf.targets_met}")
puf.write(work / "puf")

# %% [markdown]
# A PUF plan run on the raw file is refused: the tiers must nest.

# %%
try:
    safemicro.anonymize(work / "survey.dta", SURVEY_PUF_PLAN)
except safemicro.errors.SafemicroError as e:
    print("refused:", e)

# %% [markdown]
# ## 4. What the PUF costs
#
# The PUF's utility is measured against its input, the SUF. Its `legal_status` went through
# PRAM, so proportions of legal status can move; `income` was not perturbed again.

# %%
puf_utility = indicators(puf)
puf_utility[["indicator", "before", "after", "ci_overlap"]].round(3)

# %%
plot_cis(puf_utility, "SUF vs PUF: estimates with 95 % CIs")

# %% [markdown] tags=["exercise"]
# ## Exercise 2.1
#
# The PUF plan post-randomises `legal_status` with `keep: 0.8` and `invariant: true`. What
# does *invariant* promise for the share "not registered", and does the table above show it?

# %% tags=["solution"]
row = puf_utility[puf_utility["indicator"].str.contains("not registered")].iloc[0]
print(f"share not registered: SUF {row['before']:.4f}, PUF {row['after']:.4f}, CI overlap {row['ci_overlap']:.2f}")
# Answer: an invariant PRAM matrix keeps the expected distribution of the variable, so
# marginal shares stay close (only random variation); cross-tabulations with other
# variables are attenuated, which the marginal indicator does not show.

# %% [markdown] tags=["exercise"]
# ## Exercise 2.2
#
# Make a stricter SUF: change the plan's `local_suppression` to `k: 5` (load it with
# `safemicro.plan.load_plan`, edit, pass the `Plan` object to `anonymize`). How many cells are
# suppressed now compared with k = 3?

# %% tags=["solution"]
from safemicro.plan import load_plan

plan = load_plan(SURVEY_PLAN)
for step in plan.steps:
    if "local_suppression" in step:
        step["local_suppression"]["k"] = 5
strict = safemicro.anonymize(work / "survey.dta", plan)
cells = lambda r: sum(next(s for s in r.report["steps"] if s["name"] == "local_suppression")["suppressed"].values())
print(f"cells suppressed: k=3 {cells(suf):,}, k=5 {cells(strict):,}")
