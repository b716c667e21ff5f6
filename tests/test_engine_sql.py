"""The SQL-warehouse engine: the key-table query and the household join run inside a
real PostgreSQL (started by the test, as the service tests do); every number equals the
in-memory assess on sdcMicro's testdata with 3 % missing key cells."""

from __future__ import annotations

import polars as pl
import pytest

from safemicro.assess import assess
from safemicro.errors import SafemicroError
from safemicro.scale import assess_source
from scale_support import KEYS7, assert_same_assessment, assert_same_suda_and_ldiversity, holey_testdata, with_sensitive
from service_support import Postgres, postgres_bin

pytestmark = pytest.mark.skipif(
    postgres_bin() is None, reason="PostgreSQL server binaries (initdb, pg_ctl) not installed; run `make postgres`"
)


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    return with_sensitive(holey_testdata(0.03, seed=11), seed=12)


@pytest.fixture(scope="module")
def table(frame):
    import psycopg

    pg = Postgres().start()
    cols = [*KEYS7, "sampling_weight", "ori_hid", "hhcivil"]
    with psycopg.connect(f"host=127.0.0.1 port={pg.port} user=sm dbname=postgres", autocommit=True) as c:
        c.execute("CREATE SCHEMA survey")
        c.execute(f"CREATE TABLE survey.people ({', '.join(f'{k} integer' for k in cols)}, age_f double precision)")
        cols.append("age_f")
        with c.cursor().copy(f"COPY survey.people ({', '.join(cols)}) FROM STDIN") as cp:
            for row in frame.select(cols).iter_rows():
                cp.write_row(row)
    yield f"{pg.url()}#survey.people"
    pg.stop()


def test_assessment_in_postgresql_equals_in_memory(frame, table):
    ref = assess(frame, keys=KEYS7, weight="sampling_weight", household="ori_hid").summary
    got = assess_source(table, engine="sql", keys=KEYS7, weight="sampling_weight", household="ori_hid").summary
    assert got["source"] == "table survey.people"
    assert_same_assessment(got, ref)


def test_suda2_and_ldiversity_in_postgresql_equal_in_memory(frame, table):
    """l-diversity from the server's group-by of the keys and each sensitive variable
    (null, and NaN in a double column, missing), SUDA2 from the key table."""
    sensitive = ["hhcivil", "age_f"]
    ref = assess(frame, keys=KEYS7, weight="sampling_weight", sensitive=sensitive, suda=True).summary
    got = assess_source(table, engine="sql", keys=KEYS7, weight="sampling_weight", sensitive=sensitive, suda=True)
    assert_same_suda_and_ldiversity(got.summary, ref)


def test_missing_column_in_the_table(table):
    with pytest.raises(SafemicroError, match=r"table survey.people, column 'roofs': no such column \(did you mean"):
        assess_source(table, engine="sql", keys=["urbrur", "roofs"])
