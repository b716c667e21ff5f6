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
# # Census and registration scale
#
# *About 10 minutes.* Registration databases and censuses hold millions of records. The core
# of every frequency-based measure is the **key table**: the distinct combinations of the
# keys, their sample counts fk (and weighted Fk) and the index from each record to its
# combination. safemicro builds it in one vectorised pass (integer codes and `np.bincount`,
# no loop over records), so it is the part that already scales.
#
# This short tutorial generates a registration-like extract of three million persons,
# builds the key table and runs the risk assessment on it, and times both. Note what
# *changes* in a census: there are no sampling weights — every record is the population, and
# a sample unique is a population unique.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import polars as pl

from safemicro.assess import assess
from safemicro.keys import build_key_table

rng = np.random.default_rng(2026)
n = 3_000_000
registry = pl.DataFrame(
    {
        "district": rng.integers(1, 121, n, dtype=np.int32),                   # 120 districts
        "sex": rng.integers(1, 3, n, dtype=np.int8),
        "age": np.minimum(rng.gamma(2.0, 14.0, n), 99).astype(np.int16),        # single years
        "nationality": rng.choice(12, n, p=np.r_[0.6, 0.2, 0.1, np.full(9, 0.1 / 9)]).astype(np.int8),
        "hh_size": np.minimum(rng.poisson(4.5, n) + 1, 20).astype(np.int8),
    }
)
print(f"{registry.height:,} records, {registry.estimated_size('mb'):.0f} MB")

# %%
keys = ["district", "sex", "age", "nationality", "hh_size"]
start = time.perf_counter()
table = build_key_table(registry, keys)
print(f"key table: {table.n_keys:,} distinct combinations in {time.perf_counter() - start:.1f} s")
fk = table.record_fk()
print(f"population uniques (fk = 1): {(fk == 1).sum():,}; records in combinations of fewer than 3: {(fk < 3).sum():,}")

# %%
fig, ax = plt.subplots(figsize=(6.5, 3))
counts = np.bincount(np.minimum(fk.astype(np.int64), 50))
ax.bar(np.arange(len(counts)), counts, color="#4a6c8c")
ax.set_yscale("log")
ax.set_xlabel("fk: records sharing the record's combination (50 = 50 or more)")
ax.set_ylabel("records (log)")
ax.set_title("3 million registered persons, 5 keys")
plt.show()

# %% [markdown]
# The same through `assess` (individual and global risk; no weights, so each fk is the
# population frequency). SUDA2 and l-diversity work on the same key table but cost more;
# leave them for the district you publish.

# %%
start = time.perf_counter()
result = assess(registry, keys=keys, show_progress=False)
s = result.summary
print(f"assess: {time.perf_counter() - start:.1f} s; global risk {s['global_risk']['percent']:.2f} %, "
      f"{s['k_anonymity']['violations']['5']:,} records violate 5-anonymity")

# %% [markdown]
# Banding age into five-year groups — the first thing a census office does — collapses the
# combinations:

# %%
banded = registry.with_columns((pl.col("age") // 5).alias("age"))
t2 = build_key_table(banded, keys)
fk2 = t2.record_fk()
print(f"five-year age bands: {t2.n_keys:,} combinations, {(fk2 == 1).sum():,} uniques (was {(fk == 1).sum():,})")

# %% [markdown]
# ## What is coming
#
# A scale path for the whole package is being built: an engine seam so that the key table,
# risk and the main methods run out of core on files larger than memory (Parquet in,
# Parquet out) and on database tables. Until it lands, what you have seen here is what
# exists: the key table and `assess` on frames that fit in memory (a few million rows take
# seconds and a few hundred MB), and the methods on the same frames. The README's
# *Performance* section has the measured numbers.

# %% [markdown] tags=["exercise"]
# ## Exercise 7.1
#
# Add `nationality` grouped into "top three or other" (codes 0, 1, 2, and 3 for the rest)
# and count the uniques again. Which recode, age or nationality, removes more uniques?

# %% tags=["solution"]
grouped = registry.with_columns(pl.min_horizontal(pl.col("nationality"), pl.lit(3, pl.Int8)).alias("nationality"))
fk3 = build_key_table(grouped, keys).record_fk()
print(f"uniques: raw {(fk == 1).sum():,}; age banded {(fk2 == 1).sum():,}; nationality grouped {(fk3 == 1).sum():,}")
