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
# # First risk assessment of a survey
#
# *About 15 minutes.* You receive a household survey as an SPSS file. Before anyone else sees
# it, you want to know how exposed its respondents are. In this tutorial you will
#
# 1. read an SPSS `.sav` file with its value labels,
# 2. decide the roles of the variables (identifiers, keys, weight, household),
# 3. measure the disclosure risk and read the main numbers,
# 4. look at the riskiest records, and
# 5. write the HTML report you can share with your data protection officer.
#
# We use safemicro's bundled example survey (synthetic: nobody in it exists), saved as SPSS so
# that the tutorial starts, like your work will, from a file.

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import polars as pl

import safemicro.io as sio
from safemicro.assess import assess
from safemicro.examples import generate_survey

work = Path(tempfile.mkdtemp(prefix="tutorial1-"))  # everything this tutorial writes goes here
sio.write(generate_survey(n_households=600, seed=7), work / "survey.sav")
print(sorted(p.name for p in work.iterdir()))

# %% [markdown]
# ## 1. Read the file
#
# `safemicro.io.read` returns a `Dataset`: a Polars frame plus its codebook (variable labels,
# value labels, user-missing codes). Nothing is lost on the way in.

# %%
ds = sio.read(work / "survey.sav")
print(ds.frame.shape)
ds.frame.head(5)

# %%
meta = ds.codebook.variables["camp"]
print(meta.label)
print(meta.value_labels)

# %% [markdown]
# ## 2. Roles
#
# Which variables could someone outside the survey know about a respondent? In a camp, a
# neighbour knows the site, the size of a household, its country of origin, and the age, sex
# and relationship of its members. Those are the **keys**. Names, phone numbers and GPS
# points are **direct identifiers**: they are removed, not measured. `weight` is the sampling
# weight and `hhid` the household.

# %%
direct_ids = ["head_name", "phone", "gps_lat", "gps_lon"]
keys = ["camp", "origin", "hh_size", "relationship", "sex", "age"]
ds.frame.select(direct_ids).head(3)

# %% [markdown]
# ## 3. Measure
#
# One call computes k-anonymity, the individual, global and household risk, SUDA2 and
# l-diversity for the sensitive variables.

# %%
result = assess(
    ds,
    keys=keys,
    weight="weight",
    household="hhid",
    sensitive=["protection_incident", "legal_status"],
    suda=True,
)
s = result.summary
print(f"records: {s['n_records']:,}")
print(f"sample uniques: {s['k_anonymity']['n_sample_uniques']:,}")
print(f"records violating 3-anonymity: {s['k_anonymity']['violations']['3']:,}")
print(f"global risk: {s['global_risk']['percent']:.2f} % "
      f"({s['global_risk']['expected_reidentifications']:.1f} expected re-identifications)")
print(f"household risk: {s['household_risk']['percent']:.2f} %")

# %% [markdown]
# **How to read these.** A *sample unique* is the only record in the file with its
# combination of keys. The *global risk* is the mean probability that an intruder who
# matches a record on the keys picks the right person; it accounts for the weights (a unique
# record may stand for many people). The *household risk* is the chance that at least one
# member of a record's household is re-identified. The [curator's guide](../guide/03-risk.md)
# explains every number.
#
# The distribution of the individual risk, as a histogram:

# %%
risk = result.records["risk"]
fig, ax = plt.subplots(figsize=(7, 3))
ax.hist(risk.to_numpy(), bins=40, color="#4a6c8c")
ax.axvline(0.1, color="#b03030", ls="--", label="0.1, a usual limit for a SUF")
ax.set_xlabel("individual risk")
ax.set_ylabel("records")
ax.legend(frameon=False)
plt.show()

# %% [markdown]
# ## 4. Which records, and which variables?
#
# `result.records` has one row per input record, in the input's order, so you can put the
# risk next to the data:

# %%
risky = pl.concat([ds.frame.select(keys), result.records.select("fk", "Fk", "risk", "suda_score")], how="horizontal")
risky.sort("risk", descending=True).head(8)

# %% [markdown]
# SUDA2 tells which keys make records special. The contribution of each key, in percent:

# %%
contrib = s["suda2"]["attribute_contributions"]
fig, ax = plt.subplots(figsize=(6, 2.6))
ax.barh(list(contrib), list(contrib.values()), color="#d08000")
ax.set_xlabel("contribution to SUDA scores (%)")
ax.invert_yaxis()
plt.show()

# %% [markdown]
# ## 5. The report
#
# The same results as a self-contained HTML page (no external resources), the JSON summary
# and the per-record CSV. On the command line this whole tutorial is one line:
# `safemicro assess survey.sav --keys camp,origin,hh_size,relationship,sex,age --weight weight --household hhid --suda --html risk.html`.

# %%
result.write_html(work / "risk_report.html", title="Disclosure risk - example survey")
result.write_json(work / "risk.json")
result.write_records(work / "risk_records.csv")
for p in sorted(work.iterdir()):
    print(f"{p.name:20s} {p.stat().st_size:>10,} bytes")

# %% [markdown] tags=["exercise"]
# ## Exercise 1.1
#
# A colleague suggests adding `arrival_year` to the keys "to be safe". Assess the file with it
# added. How many sample uniques are there now, and what happens to the global risk? Would
# you add it? (Think of who knows a family's arrival year.)

# %% tags=["solution"]
more = assess(ds, keys=[*keys, "arrival_year"], weight="weight", household="hhid").summary
print(f"sample uniques {s['k_anonymity']['n_sample_uniques']:,} -> {more['k_anonymity']['n_sample_uniques']:,}; "
      f"global risk {s['global_risk']['percent']:.2f} % -> {more['global_risk']['percent']:.2f} %")
# Answer: most records become unique. Add arrival_year only if the scenario says an
# intruder knows it (registration lists do hold it); otherwise it inflates risk and loss.

# %% [markdown] tags=["exercise"]
# ## Exercise 1.2
#
# Assess again **without** the weight. Why is the global risk so much higher? Which of the
# two numbers is right for a sample survey?

# %% tags=["solution"]
unweighted = assess(ds, keys=keys, household="hhid").summary
print(f"global risk with weights {s['global_risk']['percent']:.2f} %, without {unweighted['global_risk']['percent']:.2f} %")
# Answer: without weights the sample is treated as the whole population, so every sample
# unique is a population unique. For a sample survey the weighted risk is the estimate; in a
# census or registration extract (no sampling) the unweighted one is.
