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
# # sdcMicro's testdata, end to end, side by side with sdcMicro
#
# *About 15 minutes.* If you learnt SDC with sdcMicro, you know its household survey
# `testdata` (4 580 persons in 1 000 households) from the practice guide and the vignettes.
# This tutorial runs the same analysis in safemicro and puts every number next to the one
# sdcMicro 5.8.1 itself produced on the same file (the reference outputs that safemicro's
# tests carry, in `tests/data/sdcmicro_reference/`). Run it inside a safemicro clone.
#
# sdcMicro's roles for testdata: keys `urbrur roof walls water electcon relat sex`, numeric
# keys `expend income savings`, weight `sampling_weight`, household `ori_hid`.

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import safemicro.io as sio
from safemicro.assess import assess
from safemicro.methods import local_suppression, microaggregation

ROOT = next(p for p in [Path.cwd(), *Path.cwd().parents] if (p / "tests" / "data" / "sdcmicro").is_dir())
DATA = ROOT / "tests" / "data"  # the copies of sdcMicro's data and outputs in the clone
REF = DATA / "sdcmicro_reference"
testdata = pd.read_csv(DATA / "sdcmicro" / "testdata.csv")  # a pandas frame, as you may have it
reference = json.loads((REF / "testdata_reference.json").read_text())
print(testdata.shape, "| sdcMicro", reference["session"]["sdcMicro"], "|", reference["session"]["R"])
keys = reference["roles"]["keyVars"]
keys

# %% [markdown]
# ## 1. measure_risk: global and household risk
#
# In R: `measure_risk(testdata, keyVars = kv7, w = "sampling_weight", hid = "ori_hid")`.

# %%
result = assess(testdata, keys=keys, weight="sampling_weight", household="ori_hid", suda=True)
s = result.summary
mr = reference["measure_risk"]["kv7_weighted_hid"]
cso = reference["createSdcObj"]
side = pd.DataFrame(
    [
        ("global risk", s["global_risk"]["mean"], mr["global_risk"]),
        ("expected re-identifications", s["global_risk"]["expected_reidentifications"], mr["global_risk_ER"]),
        ("household risk", s["household_risk"]["mean"], mr["hier_risk"]),
        ("household expected re-identifications", s["household_risk"]["expected_reidentifications"], mr["hier_risk_ER"]),
        ("max individual risk", s["individual_risk"]["max"], mr["max_individual_risk"]),
        ("records violating 2-anonymity", s["k_anonymity"]["violations"]["2"], cso["n_violating_2anon"]),
        ("records violating 3-anonymity", s["k_anonymity"]["violations"]["3"], cso["n_violating_3anon"]),
        ("records violating 5-anonymity", s["k_anonymity"]["violations"]["5"], cso["n_violating_5anon"]),
    ],
    columns=["measure", "safemicro", "sdcMicro 5.8.1"],
)
side["equal"] = np.isclose(side["safemicro"], side["sdcMicro 5.8.1"], rtol=1e-9, atol=0)
side

# %% [markdown]
# ## 2. Per record: fk, Fk, individual and household risk
#
# sdcMicro's per-record output, compared record by record:

# %%
ref_records = pd.read_csv(REF / "testdata_measure_risk_7keys.csv")
ours = result.records.to_pandas()
per_record = pd.DataFrame(
    {
        name: [np.abs(ours[a] - ref_records[b]).max()]
        for name, a, b in [("fk", "fk", "fk"), ("Fk", "Fk", "Fk"), ("risk", "risk", "risk"), ("household risk", "hh_risk", "hier_risk")]
    },
    index=["largest absolute difference over 4 580 records"],
)
per_record

# %%
fig, ax = plt.subplots(figsize=(4.5, 4))
ax.scatter(ref_records["risk"], ours["risk"], s=8, color="#4a6c8c")
lim = [0, ref_records["risk"].max() * 1.05]
ax.plot(lim, lim, color="#999", lw=1)
ax.set_xlabel("sdcMicro individual risk")
ax.set_ylabel("safemicro individual risk")
ax.set_title("testdata, 7 keys: one point per record")
plt.show()

# %% [markdown]
# ## 3. SUDA2
#
# In R: `suda2(testdata, variables = kv7)`.

# %%
su, ref_su = s["suda2"], reference["suda2"]
pd.DataFrame(
    {
        "safemicro": [su["n_score_gt0"], su["sum_score"], su["max_score"], su["sum_dis"], su["max_dis"]],
        "sdcMicro 5.8.1": [ref_su["n_score_gt0"], ref_su["sum_score"], ref_su["max_score"], ref_su["sum_disScore"], ref_su["max_disScore"]],
    },
    index=["records with score > 0", "sum of scores", "max score", "sum of DIS scores", "max DIS score"],
)

# %%
contrib = pd.DataFrame(
    {
        "safemicro": su["attribute_contributions"],
        "sdcMicro 5.8.1": {c["variable"]: c["contribution"] for c in ref_su["attribute_contributions"]},
    }
)
contrib.plot.bar(figsize=(6, 3), color=["#4a6c8c", "#d08000"], title="Contribution of each key to the SUDA scores (%)")
plt.show()

# %% [markdown]
# ## 4. localSuppression(k = 3)
#
# safemicro's default suppression is its own optimiser; `method="sdcmicro"` reproduces
# sdcMicro's algorithm (with its default importance) cell for cell.

# %%
ds = sio.from_frame(testdata)
sdc_like, change = local_suppression(ds, keys=keys, k=3, method="sdcmicro")
optimal, change_opt = local_suppression(ds, keys=keys, k=3)
ls = reference["localSuppression"]
pd.DataFrame({"safemicro (sdcmicro method)": change.suppressed, "sdcMicro 5.8.1": ls["supps"],
              "safemicro (optimal, default)": change_opt.suppressed})

# %%
ref_after = pd.read_csv(REF / "testdata_localSuppression_k3.csv")
ours_after = sdc_like.frame.select(keys).to_pandas()
identical = (ours_after.isna() == ref_after[keys].isna()).all().all() and (
    ours_after.fillna(-1).astype(int) == ref_after[keys].fillna(-1).astype(int)
).all().all()
print("the suppressed file is identical to sdcMicro's, cell for cell:", identical)
after = assess(sdc_like, keys=keys, weight="sampling_weight", household="ori_hid").summary
print(f"global risk after: safemicro {after['global_risk']['mean']:.10f}, sdcMicro {ls['risk_after']['risk']:.10f}")

# %% [markdown]
# ## 5. microaggregation (MDAV, k = 3)
#
# In R: `microaggregation(sdcObj, method = "mdav", aggr = 3)` on `expend income savings`.
# (The first call compiles the MDAV kernel with numba; later runs reuse the cache.)

# %%
numeric = reference["roles"]["numVars"]
aggregated, change_ma = microaggregation(ds, variables=numeric, k=3)
ref_mdav = pd.read_csv(REF / "testdata_mdav_aggr3.csv")
diff = {v: float(np.abs(aggregated.frame[v].to_numpy() - ref_mdav[v].to_numpy()).max()) for v in numeric}
print("largest absolute difference from sdcMicro's aggregated values:", diff)
print("group sizes: safemicro", change_ma.details["group_sizes"], "| sdcMicro", reference["microaggregation"]["group_sizes"])

# %% [markdown] tags=["exercise"]
# ## Exercise 3.1
#
# sdcMicro's `measure_risk` example also uses only five keys (`urbrur roof walls water sex`).
# Assess testdata with those five keys and the weight. How many records violate
# 3-anonymity now? Compare with `reference["createSdcObj"]` if you like.

# %% tags=["solution"]
kv5 = reference["roles"]["keyVars_measure_risk_example"]
five = assess(testdata, keys=kv5, weight="sampling_weight", household="ori_hid").summary
print(kv5, "-> 3-anonymity violations:", five["k_anonymity"]["violations"]["3"],
      "| global risk", round(five["global_risk"]["percent"], 4), "%")

# %% [markdown] tags=["exercise"]
# ## Exercise 3.2
#
# Run `local_suppression` with `method="sdcmicro"` and `importance=keys` (the keys' own order,
# so `urbrur` is kept most and `sex` least). Which variable takes most suppressions now? The
# reference holds sdcMicro's answer under `reference["localSuppression"]["importance_1to7_supps"]`.

# %% tags=["solution"]
_, ch = local_suppression(ds, keys=keys, k=3, method="sdcmicro", importance=keys)
print("safemicro:", ch.suppressed)
print("sdcMicro: ", reference["localSuppression"]["importance_1to7_supps"])
