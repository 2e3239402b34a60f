"""The features stage on three real weeks of 2013: point-in-time correctness checked without Feast,
online/offline parity (SQLite and a real redis-server), incremental idempotent materialization."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from components.contracts import layout, schema, signature
from components.contracts.errors import StageFailed
from components.contracts.results import (
    FeaturesBuildResult,
    MaterializedView,
    MaterializeResult,
    TrainingSetResult,
)
from components.contracts.stages import FeaturesBuildParams, MaterializeParams, TrainingSetParams
from components.features import tables as ft
from components.features.build import build
from components.features.feast_repo import apply, definitions_module, feast_quiet, feature_store
from components.features.materialize import materialize
from components.features.retrieval import model_frame, online_features, scoring_frame
from components.features.training_set import training_set
from components.features.validated import read_days
from tests.conftest import redis_feast_yaml

TS_START, TS_END = "2013-01-08", "2013-01-21"
LEAD = pd.Timedelta(hours=2)


def _views():
    return definitions_module().VIEWS


def _same(a: pd.Series, b: pd.Series) -> pd.Series:
    a, b = a.astype("float64").to_numpy(), b.astype("float64").to_numpy()
    return pd.Series((a == b) | (np.isnan(a) & np.isnan(b)))


def _asof(rows: pd.DataFrame, table: pd.DataFrame, key: str, features: list[str], ttl, direction="backward"):
    """The feature values a prediction at rows.event_timestamp may see, joined by pandas alone."""
    table = table.drop(columns=["as_of_date"], errors="ignore").drop_duplicates([key, ft.TS])
    table = table.rename(columns={ft.TS: "feature_ts"}).sort_values("feature_ts", kind="stable")
    rows = rows.assign(route=rows["origin"] + "-" + rows["dest"])
    left = rows[["flight_id", "event_timestamp", key]].sort_values("event_timestamp", kind="stable")
    left = left[left[key].notna()].astype({key: str})
    kwargs = {"tolerance": pd.Timedelta(ttl)} if ttl else {}
    out = pd.merge_asof(left, table, left_on="event_timestamp", right_on="feature_ts", by=key,
                        direction=direction, allow_exact_matches=direction == "backward", **kwargs)
    return out.set_index("flight_id")


@pytest.fixture(scope="module")
def training(built_home_module):
    store, out, key = built_home_module
    return store, store.read_parquet(key), out


@pytest.fixture(scope="module")
def built_home_module(built_home):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLIGHTDECK_HOME", str(built_home))
        mp.setenv("FLIGHTDECK_PROFILE", "local")
        from components.core.store import open_store

        store = open_store()
        result = training_set(TrainingSetParams(start=TS_START, end=TS_END), store)
        yield store, result, f"training_sets/{TS_START}_{TS_END}.parquet"


def test_training_set_follows_the_model_contract(training):
    store, df, result = training
    flights = read_days(store, "flights", schema.day_range(TS_START, TS_END), required=True)
    assert len(df) == len(flights) == result["rows"] and result["shape"] == list(df.shape)
    assert set(result) == set(TrainingSetResult.__annotations__)
    assert result["uri"] == result["out"] == store.uri(f"training_sets/{TS_START}_{TS_END}.parquet")
    assert list(df.columns) == signature.KEYS + signature.CATEGORICAL + signature.NUMERIC + [signature.LABEL]
    assert df["flight_id"].is_unique
    assert str(df["event_timestamp"].dtype) == "datetime64[us, UTC]"
    # The prediction time: departure - lead, floored to the scoring interval (hourly: the UTC hour).
    assert (df["event_timestamp"] == (df["sched_dep_utc"] - LEAD).dt.floor("h")).all()
    assert (df["event_timestamp"] < df["sched_dep_utc"] - LEAD).any()  # floored, not merely shifted
    # The label: arrival delay >= 15 min, or no arrival (cancelled / diverted).
    f = flights.set_index("flight_id").loc[df["flight_id"]]
    expected = ((f["arr_delay"] >= 15) | f["arr_delay"].isna()).astype(int).to_numpy()
    assert (df[signature.LABEL].to_numpy() == expected).all()
    assert result["label_rate"] == pytest.approx(expected.mean(), abs=1e-4)
    # Schedule fields come from the flight row, in local time at the origin.
    local = f["sched_dep_utc"].dt.tz_convert(schema.LOCAL_TZ)
    assert (df["sched_hour"].to_numpy() == local.dt.hour.to_numpy()).all()
    assert (df["day_of_week"].to_numpy() == local.dt.dayofweek.to_numpy()).all()
    # Every feature view delivered values (two weeks after the data starts, stats have history);
    # wind_gust is missing in most source reports, so every column is only required to have some. The day
    # so far comes from the push log, not from the views built here (tests/features/test_day_so_far.py).
    for col in signature.NUMERIC:
        if col not in signature.DAY_SO_FAR:
            assert df[col].notna().any(), col
    for view in _views().values():
        features = view.feature_names
        assert df[features[0]].notna().mean() > 0.8, features[0]


def test_no_feature_value_is_newer_than_the_prediction_time(training):
    """Every Feast value equals the latest feature row at or before event_timestamp (pandas merge_asof),
    and that check would catch a join that looked ahead."""
    store, df, _ = training
    for view, spec in _views().items():
        key, features, ttl = spec.entity, spec.feature_names, spec.ttl
        table = store.read_parquet(layout.feature_table_key(view))
        past = _asof(df, table, key, features, ttl)
        assert (past["feature_ts"].dropna() <= past["event_timestamp"][past["feature_ts"].notna()]).all()
        got = df.set_index("flight_id").loc[past.index]
        for col in features:
            mismatch = ~_same(got[col], past[col]).to_numpy()
            assert not mismatch.any(), f"{view}.{col}: {mismatch.sum()} rows differ from the as-of join"
        if not spec.static:
            future = _asof(df, table, key, features, ttl, direction="forward")
            differs = ~_same(got[features[0]], future[features[0]])
            assert differs.mean() > 0.2, f"{view}: a look-ahead join would not be noticed"


def test_daily_stats_use_only_flights_landed_by_the_stamp(training):
    """Recompute carrier 7-day stats from the validated flights with a separate, plain rule."""
    store, _, _ = training
    flights = read_days(store, "flights", schema.day_range("2013-01-01", "2013-01-21"), required=True)
    table = store.read_parquet(layout.feature_table_key("carrier_daily_stats")).drop(columns="as_of_date").drop_duplicates()
    sched_day = flights["sched_dep_utc"].dt.tz_convert(schema.LOCAL_TZ).dt.date
    departed = flights["dep_time"].notna()
    landed = (flights["sched_dep_utc"] + pd.to_timedelta(flights["dep_delay"].clip(lower=0).fillna(0), unit="min")
              + pd.to_timedelta(flights["air_time"], unit="min") + pd.Timedelta(minutes=60))
    known_at = landed.where(departed & flights["air_time"].notna(), flights["sched_dep_utc"] + pd.Timedelta(hours=12))
    known_at = known_at.where(departed, flights["sched_dep_utc"])
    late = (flights["arr_delay"] >= 15) | flights["arr_delay"].isna()
    checked = 0
    for day in pd.date_range("2013-01-09", "2013-01-20").date:
        stamp = ft.day_stamps(day, day)[0]
        for carrier in ("UA", "B6", "EV", "MQ"):
            used = ((flights["carrier"] == carrier) & (sched_day >= day - timedelta(days=7))
                    & (sched_day <= day - timedelta(days=1)) & (known_at <= stamp))
            assert not (used & (flights["sched_dep_utc"] >= stamp)).any()
            row = table[(table["carrier"] == carrier) & (table[ft.TS] == stamp)]
            assert len(row) == 1
            assert row["carrier_late_rate_7d"].iloc[0] == pytest.approx(late[used].mean())
            assert row["carrier_cancel_rate_7d"].iloc[0] == pytest.approx((~departed[used]).mean())
            assert row["carrier_mean_dep_delay_7d"].iloc[0] == pytest.approx(flights.loc[used, "dep_delay"].mean())
            checked += 1
    assert checked == 48


def test_rebuilding_a_range_is_idempotent(fenv):
    before = {v: fenv.store.read_parquet(layout.feature_table_key(v)) for v in _views()}
    result = build(FeaturesBuildParams(start="2013-01-10", end="2013-01-12"), fenv.store)
    assert result["flights_read"] > 0
    assert set(result) == set(FeaturesBuildResult.__annotations__)
    assert set(result["rows_built"]) == set(result["table_rows"]) == set(_views())
    # Feast also holds the day-so-far views: pushed as outcomes land, never built from a range
    assert set(result["applied_views"]) == set(_views()) | set(definitions_module().PUSHED_VIEWS)
    for view, spec in _views().items():
        key = spec.entity
        after = fenv.store.read_parquet(layout.feature_table_key(view))
        cols = [c for c in (key, "as_of_date", ft.TS) if c in after.columns]
        assert not after.duplicated(cols).any(), view
        pd.testing.assert_frame_equal(after, before[view], check_exact=True)


def test_daily_stats_rows_exist_only_for_keys_that_flew_in_their_window(fenv):
    """A (route | carrier, day) row exists iff that key had a flight scheduled in the 28 days before the day,
    so a row's existence never depends on the build's range or on flights after its stamp (a route that
    first flies on the last day of a build must not get zero-count rows for the days before)."""
    flights = read_days(fenv.store, "flights", schema.day_range("2013-01-01", "2013-01-21"), required=True)
    local_day = flights["sched_dep_utc"].dt.tz_convert(schema.LOCAL_TZ).dt.tz_localize(None).dt.normalize()
    keys = {"route": flights["origin"] + "-" + flights["dest"], "carrier": flights["carrier"]}
    for view, key in (("route_daily_stats", "route"), ("carrier_daily_stats", "carrier")):
        table = fenv.store.read_parquet(layout.feature_table_key(view)).drop(columns="as_of_date").drop_duplicates()
        day = table[ft.TS].dt.tz_convert(schema.LOCAL_TZ).dt.tz_localize(None).dt.normalize() - pd.Timedelta(days=1)
        table = table.assign(day=day)  # the local day D whose end the row is stamped at
        flown = pd.DataFrame({key: keys[key], "fday": local_day}).drop_duplicates()
        pairs = table[[key, "day"]].merge(flown, on=key, how="left")
        active = pairs[(pairs["fday"] >= pairs["day"] - pd.Timedelta(days=ft.HISTORY_DAYS))
                       & (pairs["fday"] <= pairs["day"] - pd.Timedelta(days=1))][[key, "day"]].drop_duplicates()
        rows = table[[key, "day"]].drop_duplicates()
        assert len(rows) == len(active), f"{view}: {len(rows) - len(active)} rows for keys that did not fly before them"
        # and every key that did fly in the window has its row on every day of the build
        expected = flown.assign(k=1).merge(pd.DataFrame({"day": sorted(rows["day"].unique()), "k": 1}), on="k")
        expected = expected[(expected["fday"] >= expected["day"] - pd.Timedelta(days=ft.HISTORY_DAYS))
                            & (expected["fday"] <= expected["day"] - pd.Timedelta(days=1))][[key, "day"]]
        assert len(expected.drop_duplicates().merge(rows, on=[key, "day"])) == len(expected.drop_duplicates())


def test_missing_validated_partition_is_refused(fenv):
    with pytest.raises(StageFailed, match="not validated"):
        build(FeaturesBuildParams(start="2013-01-20", end="2013-01-23"), fenv.store)


def _probe_flights(store, day: str, at: pd.Timestamp, n: int = 25) -> pd.DataFrame:
    """Real flights of `day`, rescheduled so that their prediction time is exactly `at`."""
    flights = read_days(store, "flights", schema.day_range(day, day), required=True)
    sample = flights.drop_duplicates(["carrier", "origin", "dest"]).head(n).copy()
    sample["sched_dep_utc"] = ft.utc_us(pd.Series([at + LEAD] * len(sample), index=sample.index))
    return sample


def _assert_online_equals_offline(store, at: pd.Timestamp, day: str) -> int:
    probes = _probe_flights(store, day, at)
    offline = model_frame(probes, with_label=False).set_index("flight_id")
    compared = 0
    for _, flight in probes.iterrows():
        online = online_features(flight.to_dict())
        off = offline.loc[flight["flight_id"]]
        assert online["event_timestamp"] == off["event_timestamp"] == at
        for col in signature.NUMERIC:
            a, b = online[col], float(off[col])
            assert (math.isnan(a) and math.isnan(b)) or a == b, (flight["flight_id"], col, a, b)
        compared += 1
    return compared


def _day_start(day: str) -> pd.Timestamp:
    return pd.Timestamp(schema.local_day_bounds_utc(schema.parse_day(day))[0])


def _day_end(day: str) -> pd.Timestamp:
    return ft.day_stamps(schema.parse_day(day), schema.parse_day(day))[0]


def _sqlite_rows(home, view: str) -> dict:
    """The SQLite online table of a view: (entity key, feature) -> (value bytes, event_ts)."""
    import sqlite3

    with sqlite3.connect(home / "feast" / "online_store.db") as con:
        rows = con.execute(f"SELECT entity_key, feature_name, value, event_ts FROM flightdeck_{view}").fetchall()
    return {(k, f): (v, ts) for k, f, v, ts in rows}


def _online_rows(home) -> dict:
    return {view: _sqlite_rows(home, view) for view in _views()}


def test_materialize_incremental_idempotent_and_survives_reapply(fenv):
    store = fenv.store
    first = materialize(MaterializeParams(end="2013-01-12", start="2013-01-10", chunk_days=1), store)
    end1 = _day_end("2013-01-12")
    assert first["chunks"] == 3 and first["repair_chunks"] == 0 and first["end"] == end1.isoformat()
    progress = store.read_json(layout.MATERIALIZATION_PROGRESS)
    for view in _views():
        assert progress["views"][view]["materialized_until"] == end1.isoformat()
    assert _assert_online_equals_offline(store, end1, "2013-01-13") > 10

    # Same interval again: nothing to do, nothing changes (online rows compared value by value).
    online = _online_rows(fenv.home)
    again = materialize(MaterializeParams(end="2013-01-12", start="2013-01-10", chunk_days=1), store)
    assert again["chunks"] == 0 and again["repair_chunks"] == 0
    assert {v: e["intervals"] for v, e in store.read_json(layout.MATERIALIZATION_PROGRESS)["views"].items()} == \
        {v: e["intervals"] for v, e in progress["views"].items()}
    assert _online_rows(fenv.home) == online
    # A part of it too (the DAG's one-day interval, run again).
    assert materialize(MaterializeParams(end="2013-01-11", start="2013-01-11"), store)["chunks"] == 0

    # Re-applying the repo keeps what Feast recorded as materialized.
    fs = feature_store()
    intervals = {fv.name: fv.materialization_intervals for fv in fs.list_feature_views()}
    # the pushed day-so-far views reach the online store by push, never by materialization
    assert all(intervals[view] for view in _views())
    assert not any(intervals[view] for view in definitions_module().PUSHED_VIEWS)
    apply()
    assert {fv.name: fv.materialization_intervals for fv in fs.list_feature_views()} == intervals

    # Without a start, the next run continues where the last stopped: two more days, two chunks.
    nxt = materialize(MaterializeParams(end="2013-01-14", chunk_days=1), store)
    end2 = _day_end("2013-01-14")
    assert nxt["chunks"] == 2
    assert nxt["views"]["weather_hourly"]["from"] == end1.isoformat()
    weather = store.read_json(layout.MATERIALIZATION_PROGRESS)["views"]["weather_hourly"]
    assert weather["intervals"] == [[_day_start("2013-01-10").isoformat(), end2.isoformat()]]
    assert _assert_online_equals_offline(store, end2, "2013-01-15") > 10


def test_materialize_an_explicit_interval_in_bounded_chunks(fenv):
    """Exactly the requested days (local midnight to local midnight), cut into chunk_days pieces."""
    result = materialize(MaterializeParams(start="2013-01-08", end="2013-01-12", chunk_days=2), fenv.store)
    assert result["chunks"] == 3  # 2 + 2 + 1 days
    assert set(result) == set(MaterializeResult.__annotations__)
    assert set(result["views"]) == set(_views())
    assert all(set(v) == set(MaterializedView.__annotations__) for v in result["views"].values())
    for view in ("weather_hourly", "carrier_daily_stats", "route_daily_stats"):
        assert result["views"][view] == {"from": _day_start("2013-01-08").isoformat(),
                                         "to": _day_end("2013-01-12").isoformat(), "chunks": 3, "repair_chunks": 0}
    # Feast recorded one materialization per chunk, each at most two local days long.
    fv = feature_store().get_feature_view("weather_hourly")
    spans = sorted((pd.Timestamp(a), pd.Timestamp(b)) for a, b in fv.materialization_intervals)
    assert [(a.isoformat(), b.isoformat()) for a, b in spans] == [
        (_day_start("2013-01-08").isoformat(), _day_start("2013-01-10").isoformat()),
        (_day_start("2013-01-10").isoformat(), _day_start("2013-01-12").isoformat()),
        (_day_start("2013-01-12").isoformat(), _day_end("2013-01-12").isoformat())]
    assert _assert_online_equals_offline(fenv.store, _day_end("2013-01-12"), "2013-01-13") > 10
    # Nothing after the interval reached the online store: a flight predicted on Jan 17 (whose rows exist
    # offline, stamped after the interval) finds no time-varying value online.
    flight = _probe_flights(fenv.store, "2013-01-17", pd.Timestamp("2013-01-17T15:00Z")).iloc[0].to_dict()
    online = online_features(flight)
    dated = [f for view in _views().values() if not view.static for f in view.feature_names]
    assert all(math.isnan(online[f]) for f in dated), {f: online[f] for f in dated}
    offline = model_frame(pd.DataFrame([flight]), with_label=False).iloc[0]
    assert not math.isnan(offline["temp"])  # the offline store has them: the online store was kept to the interval
    with pytest.raises(StageFailed, match="after --end"):
        materialize(MaterializeParams(start="2013-01-12", end="2013-01-11"), fenv.store)
    progress = fenv.store.read_bytes(layout.MATERIALIZATION_PROGRESS)
    with pytest.raises(StageFailed, match="chunk-days must be a whole number of days, at least 1"):
        materialize(MaterializeParams(start="2013-01-13", end="2013-01-14", chunk_days=0), fenv.store)
    assert fenv.store.read_bytes(layout.MATERIALIZATION_PROGRESS) == progress  # refused before anything ran


def test_an_older_interval_after_a_newer_one_keeps_the_newer_online_values(fenv):
    store = fenv.store
    newer = materialize(MaterializeParams(start="2013-01-14", end="2013-01-15", chunk_days=1), store)
    assert newer["chunks"] == 2
    snapshot = _online_rows(fenv.home)
    older = materialize(MaterializeParams(start="2013-01-12", end="2013-01-13", chunk_days=1), store)
    # SQLite keeps the last write: the newer days are written again after the backfill, in time order.
    assert older["chunks"] == 2 and older["repair_chunks"] == 2 and older["online_store_keeps_newest"] is False
    after = _online_rows(fenv.home)
    for view, rows in snapshot.items():
        changed = [k for k, v in rows.items() if after[view].get(k) != v]
        assert not changed, f"{view}: {len(changed)} online values of the newer interval were overwritten"
        assert len(after[view]) > len(rows) or _views()[view].static  # the backfill loaded
    # The online store answers as of the newest materialized time (every key holds its latest row).
    assert _assert_online_equals_offline(store, _day_end("2013-01-15"), "2013-01-16") > 10
    weather = store.read_json(layout.MATERIALIZATION_PROGRESS)["views"]["weather_hourly"]
    assert weather["intervals"] == [[_day_start("2013-01-12").isoformat(), _day_end("2013-01-15").isoformat()]]
    assert materialize(MaterializeParams(start="2013-01-12", end="2013-01-15"), store)["chunks"] == 0

    # The premise, checked on Feast itself: its SQLite write does overwrite newer values with older ones,
    # so without the repair above the backfill would have left stale values behind.
    fs = feature_store()
    with feast_quiet():
        fs.materialize(_day_start("2013-01-13").to_pydatetime(), _day_end("2013-01-13").to_pydatetime(),
                       feature_views=["weather_hourly"])
    regressed = [k for k, (v, ts) in snapshot["weather_hourly"].items()
                 if _sqlite_rows(fenv.home, "weather_hourly")[k][1] < ts]
    assert regressed, "Feast's SQLite store now keeps the newest row: the repair chunks are no longer needed"


def test_the_first_day_of_the_data_alone_builds_trains_and_materializes(tmp_path, monkeypatch):
    """A build over 2013-01-01 alone has no earlier flights, so its daily stats tables are empty: they keep
    their key types (not null, which Feast's join refused: "carrier:int32 and carrier:string are not
    comparable") and the training rows carry missing stats, not an error."""
    from components.contracts.stages import IngestParams, ValidateParams
    from components.core.store import open_store
    from components.data.ingest import ingest
    from components.data.validate import validate

    monkeypatch.setenv("FLIGHTDECK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FLIGHTDECK_PROFILE", "local")
    monkeypatch.delenv("FLIGHTDECK_FEAST_YAML", raising=False)
    store, day = open_store(), "2013-01-01"
    flights = ingest(IngestParams(start=day, end=day), store)
    validate(ValidateParams(start=day, end=day), store)
    built = build(FeaturesBuildParams(start=day, end=day), store)
    assert built["rows_built"]["carrier_daily_stats"] == built["rows_built"]["route_daily_stats"] == 0
    for view in ("carrier_daily_stats", "route_daily_stats"):
        table = store.read_parquet(layout.feature_table_key(view))
        assert table.empty and list(table.columns)[:2] == [_views()[view].entity, "as_of_date"]
    out = training_set(TrainingSetParams(start=day, end=day), store)
    rows = store.read_parquet(f"training_sets/{day}_{day}.parquet")
    assert out["rows"] == len(rows) == flights["tables"]["schedule"]["rows"] > 800
    stats = [c for c in rows.columns if c.startswith(("carrier_", "route_")) and c not in signature.DAY_SO_FAR]
    assert len(stats) == 7 and rows[stats].isna().all().all()
    assert rows["temp"].notna().mean() > 0.9  # the other views still joined
    done = materialize(MaterializeParams(start=day, end=day), store)
    assert done["chunks"] >= 1


def test_scoring_frame_matches_the_training_rows(training, monkeypatch, built_home):
    store, df, _ = training
    monkeypatch.setenv("FLIGHTDECK_HOME", str(built_home))
    frame = scoring_frame("2013-01-15", store=store)
    assert list(frame.columns) == signature.KEYS + signature.CATEGORICAL + signature.NUMERIC
    rows = df[df["flight_id"].isin(frame["flight_id"])].drop(columns=signature.LABEL).reset_index(drop=True)
    pd.testing.assert_frame_equal(frame, rows)


def redis_yaml(tmp_path):
    """The local profile's Feast config with the aws profile's online store section (Redis)."""
    return redis_feast_yaml(tmp_path / "feature_store.yaml", registry=tmp_path / "redis-registry.db")


def test_redis_online_store_matches_offline(fenv, redis_url, monkeypatch, tmp_path):
    """The aws profile's online store section (Redis), on a real redis-server, with the local offline store."""
    import redis

    monkeypatch.setenv("FLIGHTDECK_FEAST_YAML", str(redis_yaml(tmp_path)))
    monkeypatch.setenv("FLIGHTDECK_REDIS_URL", redis_url)
    assert feature_store().config.online_store.type == "redis"

    result = materialize(MaterializeParams(end="2013-01-16", start="2013-01-15", chunk_days=1), fenv.store)
    assert result["chunks"] == 2 and result["online_store_keeps_newest"] is True
    end = _day_end("2013-01-16")
    client = redis.Redis.from_url(f"redis://{redis_url}")
    assert client.dbsize() > 0
    assert _assert_online_equals_offline(fenv.store, end, "2013-01-17") > 10
    # An older day afterwards: Redis skips rows older than the ones it holds, so no repair is needed and
    # the newer values stay (the boundary keys of 2013-01-15 have rows in both intervals).
    keys = {k: client.hgetall(k) for k in client.scan_iter(count=1000)}
    older = materialize(MaterializeParams(end="2013-01-14", start="2013-01-14", chunk_days=1), fenv.store)
    assert older["chunks"] == 1 and older["repair_chunks"] == 0
    assert all(client.hgetall(k) == v for k, v in keys.items())
    assert client.dbsize() > len(keys)
    assert _assert_online_equals_offline(fenv.store, end, "2013-01-17") > 10


def test_reads_keep_serving_while_a_materialization_holds_the_views(fenv):
    """A materialization marks its views MATERIALIZING in the shared registry for as long as it loads; the
    readers meanwhile (training sets, batch scoring, Triton's online model) must keep getting the last
    materialized values, not "cannot serve features" (feature_store.yaml: serve_features_while_materializing).
    Found by tests/features/test_concurrency.py: a training set read during a materialization failed."""
    from feast.feature_view import FeatureViewState

    store = fenv.store
    materialize(MaterializeParams(end="2013-01-12", start="2013-01-11"), store)
    end = _day_end("2013-01-12")
    before = _assert_online_equals_offline(store, end, "2013-01-13")
    fs = feature_store()
    for fv in fs.list_feature_views():  # what FeatureStore.materialize does before it loads a view
        fv.state = FeatureViewState.MATERIALIZING
        fs.registry.apply_feature_view(fv, fs.project, commit=True)
    fs.refresh_registry()
    assert {fv.state for fv in fs.list_feature_views()} == {FeatureViewState.MATERIALIZING}
    assert _assert_online_equals_offline(store, end, "2013-01-13") == before > 10
