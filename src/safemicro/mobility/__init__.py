"""Mobile network data: from an operator's call records to protected displacement statistics.

The path (see README "Mobile network data"): :mod:`.synth` generates call records of the kind
an operator holds (with a displacement scenario and its ground truth); :mod:`.ingest`
pseudonymises phone numbers with the operator's HMAC key, checks every row and writes clean
day partitions with a QA report; :mod:`.daily` reduces each day to per-subscriber daily
tables; :mod:`.features` computes the per-subscriber features F1-F10 over declared windows;
:mod:`.reference` turns them into the one-row-per-subscriber table the aggregate service
answers from (``kind: mobility`` datasets), so every released table counts distinct
subscribers, one contribution each, under the service's threshold, secondary suppression,
differencing ledger, DP and audit. Needs the ``safemicro[mobility]`` extra (pyarrow, duckdb).
"""
