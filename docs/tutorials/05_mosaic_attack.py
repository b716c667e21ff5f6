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
# # Testing a release against a mosaic attack
#
# *About 15 minutes.* The risk report says what the *frequencies* promise. An intruder does
# not compute frequencies: they join lists. Here the intruder holds two lists of named
# people — a **registration extract** (site, household size, sex) and a **distribution list**
# (origin, relationship, age band) — joins them on the names (the *mosaic*), and looks for
# each person in the released scientific use file. You will measure
#
# 1. how many people each list finds alone, and the two together,
# 2. how this compares with what the frequency-based risk predicted, and
# 3. what the nested public use file changes.
#
# To *score* the attack we need to know who is who: an evaluation-only person id `pid` is
# carried through the plans (it is never published, and the intruder never sees it).

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import polars as pl

import safemicro
from safemicro.attack import LinkageEvaluator
from safemicro.examples import SURVEY_PLAN, SURVEY_PUF_PLAN, generate_survey

work = Path(tempfile.mkdtemp(prefix="tutorial5-"))
survey = generate_survey(n_households=800, seed=11)
survey = survey.with_frame(survey.frame.with_row_index("pid", offset=1))
suf = safemicro.anonymize(survey, SURVEY_PLAN)
suf.write(work / "suf")
puf = safemicro.anonymize(work / "suf", SURVEY_PUF_PLAN)
print(f"{survey.n:,} persons; SUF {suf.dataset.n:,} records, PUF {puf.dataset.n:,} records")

# %% [markdown]
# ## The intruder's lists
#
# Taken from the true data, then coded the way the release codes them (the plan's published
# recodes: age in the SUF's nine bands, household size top-coded at 10, rare origins grouped).
# Each list covers a random 60 % of the people, as real lists do.

# %%
raw = survey.frame
age_band = sum((pl.col("age") >= b).cast(pl.Int64) for b in [5, 10, 15, 18, 25, 35, 45, 60]) + 1
coded = raw.select(
    "pid", "camp", "sex", "relationship",
    pl.col("hh_size").clip(upper_bound=10),
    pl.col("origin").replace({6: 9, 7: 9, 8: 9}),
    age_band.alias("age"),
)
registration = coded.select("pid", "camp", "hh_size", "sex").sample(fraction=0.6, seed=1)
distribution = coded.select("pid", "origin", "relationship", "age").sample(fraction=0.6, seed=2)
registration.head(3)

# %%
distribution.head(3)

# %% [markdown]
# ## Link them to the SUF

# %%
release = suf.dataset.frame
results = {}
for name, lists in [("registration alone", registration), ("distribution alone", distribution),
                    ("mosaic: both joined", [registration, distribution])]:
    ev = LinkageEvaluator(release, lists, truth="pid").evaluate(drivers=False)
    r = ev.results()
    results[name] = {"people listed": r["n_auxiliary"], "linking columns": ", ".join(r["linking_columns"]),
                     "true match rate": r["true_match_rate"], "re-identified (confidence >= 0.5)": r["reidentified"],
                     "of which right": r["reidentified_correct"]}
table = pd.DataFrame(results).T
table

# %% [markdown]
# Alone, each list matches many records per person. Joined, the lists narrow the candidates
# to a few: that is the mosaic effect. Which people are found? The risk by the size of
# their key combination in the release:

# %%
mosaic = LinkageEvaluator(release, [registration, distribution], truth="pid").evaluate()
groups = pd.DataFrame([g for g in mosaic.results()["groups"] if g["by"].startswith("released key")])
ax = groups.plot.bar(x="group", y="true_match_rate", legend=False, color="#4a6c8c", figsize=(6, 3),
                     title="True match rate by the size of the released key combination (fk)")
ax.set_xlabel("fk of the person's released record")
plt.show()

# %% [markdown]
# ## Measured vs promised
#
# The frequency-based global risk is *weighted*: it estimates the re-identifications of an
# intruder who does not know who was interviewed, so each released record must be told
# apart from all Fk people in the population who share its keys. Our intruder's lists hold
# only people who *were* interviewed (a neighbour who saw the enumerators, a list made from
# the survey's own sampling frame) — the scenario that k-anonymity measures, where only
# the fk records of the release compete. The release-side view counts released records the
# intruder links correctly. When the two numbers differ this much, ask which scenario the
# release must withstand: the plan's targets only hold for the scenario they were set for.

# %%
side = mosaic.release_side()
promised = suf.report["risk_after"]["global_risk"]["expected_reidentifications"]
print(f"weighted frequency risk after the SUF plan: {promised:.1f} expected re-identifications (intruder who does not know who was interviewed)")
print(f"mosaic attack with lists of interviewed people: {side['expected_correct']:.1f} released records expected to be linked correctly")

# %% [markdown]
# ## The PUF
#
# The PUF codes age in five bands and household size up to 8. The intruder recodes their
# lists the same way (published in the PUF's documentation):

# %%
puf_lists = [
    registration.with_columns(pl.col("hh_size").clip(upper_bound=8)),
    distribution.with_columns(pl.col("age").replace({1: 1, 2: 1, 3: 1, 4: 2, 5: 2, 6: 3, 7: 3, 8: 4, 9: 5})),
]
puf_ev = LinkageEvaluator(puf.dataset.frame, puf_lists, truth="pid").evaluate(drivers=False).results()
table.loc["mosaic against the PUF"] = [puf_ev["n_auxiliary"], ", ".join(puf_ev["linking_columns"]), puf_ev["true_match_rate"],
                                       puf_ev["reidentified"], puf_ev["reidentified_correct"]]
ax = table["true match rate"].astype(float).plot.barh(color="#d08000", figsize=(6, 2.6), title="True match rate")
ax.invert_yaxis()
plt.show()
table

# %% [markdown] tags=["exercise"]
# ## Exercise 5.1
#
# The intruder also knows the **whole household**: the list gives every member of a
# household. Run the household attack on the SUF (`household="hhid"` for the release,
# `aux_household=` for the list; add the true household id to the mosaic list first). Are
# more people found?

# %% tags=["solution"]
hh_list = coded.join(raw.select("pid", pl.col("hhid").alias("list_hh")), on="pid")
hh_ev = LinkageEvaluator(release, hh_list, truth="pid", household="hhid", aux_household="list_hh").evaluate(drivers=False)
hh = hh_ev.results()
print(f"person linkage true match rate {hh['true_match_rate']:.3f}; household attack: {hh['households']}")

# %% [markdown] tags=["exercise"]
# ## Exercise 5.2
#
# Which linking column drives the mosaic's correct links most? (`mosaic.results()["drivers"]`
# lists how many correct links are lost when each column is left out.)

# %% tags=["solution"]
pd.DataFrame(mosaic.results()["drivers"])
