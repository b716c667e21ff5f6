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
# # Serving aggregates to an analyst, and what a differencing attempt gets
#
# *About 15 minutes.* A registration extract cannot leave the organisation, but partners
# need counts and means by site, group and month. Instead of publishing tables once, a
# small **node** answers their questions with protected aggregates only: each analyst has a
# scoped, expiring token; each answer is checked (threshold, dominance, secondary
# suppression); and a **differencing ledger** refuses any combination of answers that would
# isolate fewer people than the threshold. In this tutorial you will
#
# 1. prepare a registration extract and a node configuration,
# 2. start the node on 127.0.0.1 and issue a token to an analyst,
# 3. query it as the analyst (a pandas frame back), and
# 4. try to difference two answers to learn about a small group — and be refused.

# %%
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import matplotlib.pyplot as plt
import numpy as np
import polars as pl
import yaml

from safemicro.client import Client
from safemicro.client import ServiceError
from safemicro.examples import generate_survey
from safemicro.service.tokens import generate_keypair, issue_token, load_private_key

work = Path(tempfile.mkdtemp(prefix="tutorial6-"))

# %% [markdown]
# ## 1. A registration extract
#
# One row per registered person: site, status, sex, registration date and monthly income.
# We build it from the example survey and mark four people as *returnees* — a small group
# whose members could be recognised from a count.

# %%
people = generate_survey(n_households=250, seed=5).frame
rng = np.random.default_rng(5)
status = rng.choice(["refugee", "asylum seeker", "host"], size=people.height, p=[0.6, 0.25, 0.15])
status[rng.choice(people.height, size=4, replace=False)] = "returnee"
sites = {1: "Amani", 2: "Baraka", 3: "Tumaini", 4: "Upendo", 5: "Salama", 6: "Neema", 7: "Furaha", 8: "Jamii"}
extract = people.select(
    (pl.col("hhid").cast(pl.String) + "-" + pl.col("line_no").cast(pl.String)).alias("person_id"),
    pl.col("camp").replace_strict(sites).alias("site"),
    pl.Series("status", status),
    pl.col("sex").replace_strict({1: "male", 2: "female"}).alias("sex"),
    pl.date(2024, 1, 1).dt.offset_by(pl.Series(rng.integers(0, 180, people.height)).cast(pl.String) + "d").alias("registered"),
    pl.col("income").fill_null(0.0),
)
extract.write_csv(work / "registration.csv")
extract.head()

# %% [markdown]
# ## 2. The node: keys, configuration, start
#
# Two key pairs: the **issuer**'s (signs analysts' tokens) and the **node**'s (signs every
# answer, so an analyst can prove what the node said). The configuration declares what can
# be asked: dimensions, measures, query kinds and the protection policy.

# %%
generate_keypair(work / "issuer")
generate_keypair(work / "node")
config = {
    "audience": "tutorial-node",
    "database": "duckdb:///state.duckdb",
    "issuer_public_key": "issuer.pub",
    "signing_key": "node.key",
    "audit_log": "audit.jsonl",
    "max_token_minutes": 60,
    "datasets": {
        "registration": {
            "file": "registration.csv",
            "unit": "person_id",
            "dimensions": {
                "site": {"kind": "admin", "column": "site"},
                "group": {"kind": "category", "column": "status", "values": ["refugee", "asylum seeker", "host", "returnee"]},
                "sex": {"kind": "category", "column": "sex", "values": ["female", "male"]},
                "month": {"kind": "time", "column": "registered", "bin": "month"},
            },
            "measures": {"income": {"column": "income", "lower": 0, "upper": 500, "granularity": 1}},
            "queries": ["count", "sum", "mean", "crosstab"],
            "policy": {"threshold": 10},
        }
    },
}
(work / "service.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

# %%
import socket


def start_node(config_file: str) -> tuple[subprocess.Popen, str]:
    """`safemicro serve` on a free port of this machine; returns the process and its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    log = work / (config_file + ".log")
    node = subprocess.Popen(
        [sys.executable, "-m", "safemicro.cli", "serve", config_file, "--host", "127.0.0.1", "--port", str(port)],
        cwd=work, stdout=subprocess.DEVNULL, stderr=log.open("wb"),
    )
    for _ in range(300):  # wait until it answers (at most 60 s)
        if node.poll() is not None:
            raise RuntimeError(log.read_text())
        try:
            if httpx.get(url + "/v1/health", timeout=1).status_code == 200:
                return node, url
        except httpx.HTTPError:
            time.sleep(0.2)
    node.terminate()
    raise RuntimeError("the node did not start")


node, url = start_node("service.yaml")
print("node running at", url)

# %% [markdown]
# ## 3. A token for an analyst, and her first questions
#
# The provider issues Ana (of a partner organisation) a token valid for 30 minutes that
# allows counts, means and crosstabs of `registration` by site, group and month — not by
# sex.

# %%
token = issue_token(
    load_private_key(work / "issuer.key"),
    audience="tutorial-node",
    subject="ana",
    organisation="partner-ngo",
    grants=[{"dataset": "registration", "queries": ["count", "mean", "crosstab"],
             "dimensions": ["site", "group", "month"], "measures": ["income"], "actions": ["query", "catalogue"]}],
    minutes=30,
)
ana = Client(url, token)  # checks the node's signature on every answer
ana.catalogue()["datasets"]["registration"]["dimensions"]

# %%
by_site = ana.query("registration", "count", by=["site"], pandas=True)
by_site

# %%
table = by_site[by_site["site"].notna()]
fig, ax = plt.subplots(figsize=(6, 2.8))
ax.bar(table["site"], table["value"], color=["#4a6c8c" if s == "released" else "#cccccc" for s in table["status"]])
ax.set_ylabel("registered persons")
ax.set_title("Count by site (grey: suppressed)")
plt.show()

# %%
ana.query("registration", "count", by=["group"], pandas=True)

# %% [markdown]
# The four returnees are below the threshold of 10: their cell is **suppressed**, with the
# interval an analyst can still infer (`lower`, `upper`), never the value. Asking by sex is
# outside Ana's grant:

# %%
try:
    ana.query("registration", "count", by=["sex"])
except ServiceError as e:
    print("refused:", e.status, e)

# %% [markdown]
# ## 4. A differencing attempt
#
# Ana asks for the total, then for everybody *except* the returnees. Each answer alone is a
# large count; their difference would be the returnees' count. The ledger remembers what was
# released (to every analyst) and refuses the second question.

# %%
total = ana.query("registration", "count", pandas=True)
print("total registered:", total["value"].iloc[-1])
try:
    ana.query("registration", "count", filters={"group": ["refugee", "asylum seeker", "host"]}, pandas=True)
except ServiceError as e:
    print("refused:", e.status, e)

# %% [markdown]
# The same holds for means: the mean income of everybody and of everybody but one small group
# would give that group's total. Every request, decision and release is in the hash-chained
# audit log:

# %%
log = [yaml.safe_load(line) for line in (work / "audit.jsonl").read_text().splitlines()]
pl.DataFrame([{"seq": e.get("seq"), "event": e.get("event"), "subject": e.get("subject"), "status": e.get("status")} for e in log]).tail(8)

# %% [markdown] tags=["exercise"]
# ## Exercise 6.1
#
# Ask for the **mean income by site**. Which cells are released? Then try the mean income of
# all sites except one (`filters={"site": [...]}`) after asking the overall mean. What does
# the node answer, and why?

# %% tags=["solution"]
means = ana.query("registration", "mean", measure="income", by=["site"], pandas=True)
print(means[["site", "value", "status", "rule"]])
overall = ana.query("registration", "mean", measure="income", pandas=True)
others = [s for s in table["site"] if s != "Neema"]
try:
    print(ana.query("registration", "mean", measure="income", filters={"site": others}, pandas=True)[["value", "status"]])
except ServiceError as e:
    print("refused:", e.status, e)
# Answer: large differences (a whole site of more than 10 people) are allowed; a difference
# that isolates fewer than the threshold is refused, whichever query kind is used.

# %% [markdown]
# ## 5. Free questions without a ledger: the cell key method
#
# The ledger gives exact answers but refuses some questions, and deciding a new question
# can take a second. When partners need many ad hoc tables and approximate values are
# enough, the provider can serve the extract under the **cell key method** instead (as the
# Australian Bureau of Statistics' TableBuilder does): every record gets a secret key, and
# every cell is perturbed by a value read off its records' keys — counts by a few units,
# sums by a share of their largest contributions. The same people always give the same
# perturbation, in any table and for any analyst, so asking again gains nothing. (One set
# of people is served one way: the node refuses to start if the same extract is also served
# with exact answers, since the exact value would show the perturbation.)

# %%
keyed = {**config, "audit_log": "audit_ck.jsonl", "database": "duckdb:///state_ck.duckdb"}
keyed["datasets"] = {"registration": {**config["datasets"]["registration"]}}
keyed["datasets"]["registration"]["policy"] = {"threshold": 10, "protection": "cell_key", "cell_key": {"seed": 20240917}}
(work / "service_ck.yaml").write_text(yaml.safe_dump(keyed, sort_keys=False))
node_ck, url_ck = start_node("service_ck.yaml")
ana_ck = Client(url_ck, token)
ana_ck.query("registration", "mean", measure="income", by=["site"], pandas=True)[["site", "value", "status"]]

# %% [markdown]
# The differencing attempt of section 4, on this node: the question with three groups out
# of four is refused — not by a ledger, but by the mode's rule that a filter names one
# value or all of them. Tables around one person that differ by them alone would otherwise
# be many, and averaging their differences would wear the perturbation away.

# %%
print("total:", ana_ck.query("registration", "count", pandas=True)["value"].iloc[-1])
try:
    ana_ck.query("registration", "count", filters={"group": ["refugee", "asylum seeker", "host"]})
except ServiceError as e:
    print("refused:", e.status, e)
by_group = ana_ck.query("registration", "count", by=["group"], pandas=True)
by_group[["group", "value", "status"]]

# %% [markdown]
# The four returnees' cell stays suppressed (its perturbed count is below 10), and the total
# minus the three other groups is the returnees' count plus four perturbations of up to
# three each: not their count.

# %% [markdown]
# ## Stop the nodes
#
# (In production a node runs as a service: `safemicro serve service.yaml`.)

# %%
for client, process in ((ana, node), (ana_ck, node_ck)):
    client.close()
    process.terminate()
    process.wait(timeout=30)
    print("node stopped with", process.returncode)
