"""Keyed pseudonymisation and partial masking of direct identifiers.

Reference: RFC 4231 (HMAC-SHA256 test vectors), test case 1: key = 0x0b × 20, data
"Hi There" → b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7.
"""

from __future__ import annotations

import polars as pl
import pytest

import safemicro
from safemicro.errors import SafemicroError
from safemicro.io import Dataset
from safemicro.methods import pseudonymise
from safemicro.plan import Plan

RFC_KEY = b"\x0b" * 20
SECRET = "a provider key that is long enough"


def test_rfc4231_vector_and_stable_pseudonyms():
    ds = Dataset(pl.DataFrame({"case": ["Hi There", "other", "Hi There", None]}))
    out, change = pseudonymise(ds, variables="case", key=RFC_KEY, length=64)
    case = out.frame["case"].to_list()
    assert case[0] == "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    assert case[2] == case[0] and case[1] != case[0] and case[3] is None
    assert change.changed == {"case": 3} and "mapping" not in change.to_dict()["details"]
    mapping = change.private["mapping"]["case"]
    assert mapping.filter(pl.col("original") == "Hi There")["pseudonym"][0] == case[0]


def test_numbers_as_their_text_and_another_key_another_pseudonym():
    a = Dataset(pl.DataFrame({"id": [12.0, 7.5]}))
    b = Dataset(pl.DataFrame({"id": [12, 8]}))
    pa = pseudonymise(a, variables="id", key=RFC_KEY, length=12).dataset.frame["id"]
    pb = pseudonymise(b, variables="id", key=RFC_KEY, length=12).dataset.frame["id"]
    assert pa[0] == pb[0] and len(pa[0]) == 12
    assert pseudonymise(b, variables="id", key=b"y" * 16).dataset.frame["id"][0] != pb[0]


def test_partial_masking():
    ds = Dataset(pl.DataFrame({"phone": ["+999 712 345 645", "12", None]}))
    out, _ = pseudonymise(ds, variables="phone", method="mask", keep_first=6, keep_last=2, mask_char="*")
    assert out.frame["phone"].to_list() == ["+999 7********45", "**", None]


def _plan(tmp_path, **step) -> Plan:
    return Plan.model_validate(
        {
            "roles": {"direct_ids": ["name", "case_no"], "keys": ["camp", "sex"]},
            "targets": {"k": 1, "max_global_risk": None},
            "steps": [
                {"remove_variables": {"variables": ["name"]}},
                {"pseudonymise": {"variables": ["case_no"], **step}},
            ],
            "seed": 1,
        }
    )


@pytest.fixture
def frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "name": ["Amina", "Juma", "Grace", "Peter"],
            "case_no": ["UG-001", "UG-002", "UG-003", "UG-001"],
            "camp": [1, 1, 2, 2],
            "sex": [1, 2, 1, 2],
        }
    )


def test_plan_step_with_the_key_from_the_environment(tmp_path, frame, monkeypatch):
    monkeypatch.setenv("SAFEMICRO_TEST_KEY", SECRET)
    mapping = tmp_path / "private" / "mapping.csv"
    mapping.parent.mkdir()
    release = safemicro.anonymize(frame, _plan(tmp_path, key_env="SAFEMICRO_TEST_KEY", mapping_file=str(mapping)))
    paths = release.write(tmp_path / "bundle")
    released = release.dataset.frame["case_no"].to_list()
    assert released[0] == released[3] and len(set(released)) == 3 and "UG-001" not in released
    table = pl.read_csv(mapping)
    assert table.columns == ["variable", "original", "pseudonym"] and table.height == 3
    assert dict(zip(table["original"], table["pseudonym"]))["UG-001"] == released[0]
    for path in paths.values():  # neither the key nor an original id anywhere in the bundle
        text = path.read_bytes()
        assert SECRET.encode() not in text and b"UG-00" not in text and b"Amina" not in text
    assert "SAFEMICRO_TEST_KEY" in paths["plan.lock.yaml"].read_text()  # where the key was read, not the key


def test_key_file_mapping_inside_the_bundle_and_bad_keys_are_refused(tmp_path, frame, monkeypatch):
    key_file = tmp_path / "key.txt"
    key_file.write_text(SECRET + "\n")
    inside = tmp_path / "bundle" / "mapping.csv"
    release = safemicro.anonymize(frame, _plan(tmp_path, key_file=str(key_file), mapping_file=str(inside)))
    with pytest.raises(SafemicroError, match="outside the release bundle"):
        release.write(tmp_path / "bundle")
    assert not (tmp_path / "bundle").exists()
    monkeypatch.delenv("SAFEMICRO_NO_SUCH_KEY", raising=False)
    with pytest.raises(SafemicroError, match="SAFEMICRO_NO_SUCH_KEY"):
        safemicro.anonymize(frame, _plan(tmp_path, key_env="SAFEMICRO_NO_SUCH_KEY"))
    key_file.write_text("short")
    with pytest.raises(SafemicroError, match="shorter than 16 bytes"):
        safemicro.anonymize(frame, _plan(tmp_path, key_file=str(key_file)))
    with pytest.raises(SafemicroError, match="key_file or key_env"):
        safemicro.anonymize(frame, _plan(tmp_path))
