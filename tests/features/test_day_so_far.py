"""The day so far, pushed through Feast (components/features/push.py, day_so_far.py) on a real store.

For the flights of a replayed day: the training-set join (Feast get_historical_features through the
feature service) at each flight's prediction time equals the values recomputed here independently,
flight by flight, from the validated flights; an online lookup after pushing up to T equals the
offline point-in-time value at T; what was pushed after a prediction time never changes its values;
a rerun leaves the offline log as it was.
"""

from __future__ import annotations

import shutil
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

DAY = date(2013, 1, 15)
UNTIL = "2013-01-15T17:00:00Z"
ORIGIN = ["origin_deps_so_far", "origin_dep_delay_so_far", "origin_late15_share_so_far", "origin_waiting_so_far"]
CARRIER = ["carrier_origin_deps_so_far", "carrier_origin_dep_delay_so_far", "carrier_origin_late15_share_so_far",
           "carrier_origin_waiting_so_far"]
PLANE = ["plane_deps_so_far", "plane_prev_dep_delay"]
NEW = ORIGIN + CARRIER + PLANE


@pytest.fixture(scope="module")
def pushed(built_home, tmp_path_factory):
    """A private home where DAY-1 was pushed whole and DAY up to UNTIL, then DAY whole."""
    from components.contracts.stages import PushOutcomesParams
    from components.core.store import open_store
    from components.features.push import push_outcomes

    home = tmp_path_factory.mktemp("push") / "home"
    shutil.copytree(built_home, home)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLIGHTDECK_HOME", str(home))
        mp.setenv("FLIGHTDECK_PROFILE", "local")
        mp.delenv("FLIGHTDECK_FEAST_YAML", raising=False)
        store = open_store()
        push_outcomes(PushOutcomesParams(date=(DAY - timedelta(days=1)).isoformat()), store)
        partial = push_outcomes(PushOutcomesParams(date=DAY.isoformat(), until=UNTIL), store)
        yield {"mp": mp, "store": store, "home": home, "partial": partial}


def _flights(store, days):
    from components.features.validated import read_days

    return read_days(store, "flights", days, required=True)


def _joined(flights, settings=None):
    from components.core.settings import load_settings
    from components.features.retrieval import entity_rows, historical_features

    settings = settings or load_settings()
    entities = entity_rows(flights, settings.lead_time_hours, settings.scoring_interval_minutes)
    feats = historical_features(entities, settings).sort_values("row").reset_index(drop=True)
    return entities, feats


def _expected(all_flights: pd.DataFrame, flight: pd.Series, at: pd.Timestamp) -> dict:
    """The day-so-far values for one flight at time `at`, straight from the flights (no event table)."""
    from components.contracts.schema import LOCAL_TZ

    local = at.tz_convert(LOCAL_TZ)
    midnight = pd.Timestamp(local.date(), tz=LOCAL_TZ).tz_convert("UTC")
    f = all_flights
    sched = pd.to_datetime(f["sched_dep_utc"], utc=True)
    departed = f["dep_time"].notna()
    dep_at = sched + pd.to_timedelta(f["dep_delay"].fillna(0), unit="min")
    gone = departed & (dep_at >= midnight) & (dep_at <= at)
    todays = (sched.dt.tz_convert(LOCAL_TZ).dt.date == local.date())
    waiting = todays & departed & (sched <= at) & (dep_at > at)
    out = {}
    for prefix, mask in (("origin", f["origin"] == flight["origin"]),
                         ("carrier_origin", (f["origin"] == flight["origin"]) & (f["carrier"] == flight["carrier"]))):
        d = f.loc[gone & mask, "dep_delay"]
        out[f"{prefix}_deps_so_far"] = float(len(d))
        out[f"{prefix}_dep_delay_so_far"] = float(d.mean()) if len(d) else np.nan
        out[f"{prefix}_late15_share_so_far"] = float((d >= 15).mean()) if len(d) else np.nan
        out[f"{prefix}_waiting_so_far"] = float((waiting & mask).sum())
    if pd.isna(flight["tailnum"]):
        out.update(plane_deps_so_far=np.nan, plane_prev_dep_delay=np.nan)
    else:
        mine = f[gone & (f["origin"] == flight["origin"]) & (f["tailnum"] == flight["tailnum"])]
        mine = mine.assign(at=dep_at[mine.index]).sort_values("at")
        out["plane_deps_so_far"] = float(len(mine))
        out["plane_prev_dep_delay"] = float(mine["dep_delay"].iloc[-1]) if len(mine) else np.nan
    return out


def _assert_frames_equal(got: pd.DataFrame, want: pd.DataFrame, what: str):
    got = got.astype("float64").reset_index(drop=True)
    want = want.astype("float64").reset_index(drop=True)
    bad = ~(np.isclose(got, want, equal_nan=True))
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise AssertionError(f"{what}: {int(bad.sum())} values differ, e.g. row {i} {got.columns[j]}: "
                             f"got {got.iat[i, j]}, want {want.iat[i, j]}")


def test_training_set_join_equals_independent_recomputation(pushed):
    """Flights of DAY predicted up to UNTIL (some on the day before: the reset at midnight), and after
    the whole day is pushed, every flight of DAY: the join returns exactly the day so far."""
    from components.contracts.stages import PushOutcomesParams
    from components.features.push import push_outcomes

    store = pushed["store"]
    everything = _flights(store, [DAY - timedelta(days=2) + timedelta(days=i) for i in range(4)])
    flights = _flights(store, [DAY])
    entities, partial = _joined(flights)
    known = (entities["event_timestamp"] <= pd.Timestamp(UNTIL)).to_numpy()
    assert known.sum() > 200 and (~known).sum() > 200

    push_outcomes(PushOutcomesParams(date=DAY.isoformat()), store)
    _, whole = _joined(flights)
    # What was pushed after a prediction time never changes the values joined at it.
    _assert_frames_equal(partial.loc[known, NEW], whole.loc[known, NEW], "before vs after the rest of the day")
    want = pd.DataFrame([_expected(everything, flights.iloc[i], entities["event_timestamp"].iloc[i])
                         for i in range(len(flights))])
    _assert_frames_equal(whole[NEW], want[NEW], "training-set join vs recomputation")
    assert (whole["origin_deps_so_far"] > 0).mean() > 0.8  # not a trivially empty day
    assert whole["plane_prev_dep_delay"].notna().sum() > 50  # aircraft with an earlier departure that day


def test_online_after_push_until_t_equals_offline_at_t(built_home, tmp_path, monkeypatch):
    """Push up to T: the online store answers every key of the day with the offline PIT value at T."""
    from components.contracts.stages import PushOutcomesParams
    from components.core.store import open_store
    from components.features.feast_repo import feature_service_name, feature_store
    from components.features.push import push_outcomes
    from components.features.retrieval import historical_features

    home = tmp_path / "home"
    shutil.copytree(built_home, home)
    monkeypatch.setenv("FLIGHTDECK_HOME", str(home))
    monkeypatch.setenv("FLIGHTDECK_PROFILE", "local")
    store = open_store()
    push_outcomes(PushOutcomesParams(date=DAY.isoformat(), until=UNTIL), store)
    t = pd.Timestamp(UNTIL).as_unit("us")
    flights = _flights(store, [DAY]).drop_duplicates(["origin", "carrier", "tailnum"]).reset_index(drop=True)
    rows = pd.DataFrame({
        "row": np.arange(len(flights)), "event_timestamp": t, "as_of_date": t.strftime("%Y-%m-%d"),
        "as_of_hour": t.strftime("%Y-%m-%dT%H"),
        "origin": flights["origin"].astype(str), "carrier": flights["carrier"].astype(str),
        "route": flights["origin"].astype(str) + "-" + flights["dest"].astype(str),
        "tailnum": flights["tailnum"].astype(object).where(flights["tailnum"].notna(), None),
    })
    offline = historical_features(rows).sort_values("row").reset_index(drop=True)
    fs = feature_store()
    service = fs.get_feature_service(feature_service_name())
    online = fs.get_online_features(features=service, entity_rows=[
        {k: (r[k] if r[k] is not None else "") for k in ("origin", "carrier", "route", "tailnum", "as_of_date", "as_of_hour")}
        for r in rows.to_dict("records")]).to_df()
    _assert_frames_equal(online[NEW], offline[NEW], "online after push vs offline at T")
    assert (offline["origin_deps_so_far"] > 0).all()


def test_online_never_serves_the_day_before_s_values(built_home, tmp_path, monkeypatch):
    """Day D-1 pushed whole, D not yet: D-1's rows stand under D's date bucket (the one-day ttl), yet an online
    prediction on D reads its aircraft's day so far as missing, not D-1's departures; once D's midnight reset is
    pushed it reads the reset (0 departures), as the offline join does."""
    from components.contracts.schema import LOCAL_TZ
    from components.contracts.stages import PushOutcomesParams
    from components.core.store import open_store
    from components.features.push import push_outcomes
    from components.features.retrieval import online_features

    home = tmp_path / "home"
    shutil.copytree(built_home, home)
    monkeypatch.setenv("FLIGHTDECK_HOME", str(home))
    monkeypatch.setenv("FLIGHTDECK_PROFILE", "local")
    store = open_store()
    before = DAY - timedelta(days=1)
    push_outcomes(PushOutcomesParams(date=before.isoformat()), store)
    flown = _flights(store, [before]).dropna(subset=["dep_delay", "tailnum"])
    today = _flights(store, [DAY])
    today = today[today.set_index(["tailnum", "origin"]).index.isin(flown.set_index(["tailnum", "origin"]).index)]
    local = pd.to_datetime(today["sched_dep_utc"], utc=True).dt.tz_convert(LOCAL_TZ)
    flight = today[local.dt.hour >= 12].iloc[0]  # flew from the same airport the day before; departs after noon
    request = {k: flight[k] for k in ("flight_id", "carrier", "origin", "dest", "tailnum", "distance")}
    request["sched_dep_utc"] = pd.Timestamp(flight["sched_dep_utc"]).isoformat()

    row = online_features(request)
    assert np.isnan(row["plane_deps_so_far"]) and np.isnan(row["plane_prev_dep_delay"]), row
    midnight = pd.Timestamp(DAY.isoformat(), tz=LOCAL_TZ).tz_convert("UTC").isoformat()
    push_outcomes(PushOutcomesParams(date=DAY.isoformat(), until=midnight), store)
    row = online_features(request)
    assert row["plane_deps_so_far"] == 0 and np.isnan(row["plane_prev_dep_delay"]), row


def test_rerun_is_idempotent(pushed):
    """Pushing a day again leaves its offline log as it was (no duplicated rows)."""
    from components.contracts import layout
    from components.contracts.stages import PushOutcomesParams
    from components.features.push import push_outcomes

    store = pushed["store"]
    before = {v: pd.read_parquet(store.local_path(layout.feature_table_key(v)))
              for v in ("origin_day_so_far", "carrier_origin_day_so_far", "plane_day_so_far")}
    again = push_outcomes(PushOutcomesParams(date=(DAY - timedelta(days=1)).isoformat()), store)
    from components.contracts.results import PushOutcomesResult

    assert set(again) == set(PushOutcomesResult.__annotations__)  # the declared result, exactly
    assert pushed["partial"]["until"] == "2013-01-15T17:00:00+00:00" and pushed["partial"]["online_pushes"] > 0
    for view, df in before.items():
        after = pd.read_parquet(store.local_path(layout.feature_table_key(view)))
        pd.testing.assert_frame_equal(after, df)
        assert again["log_rows"][view] == len(df)
        assert not after.duplicated([c for c in after.columns if c not in NEW]).any()


def test_until_is_clipped_to_the_replayed_day():
    from components.features.day_so_far import day_bounds
    from components.features.push import parse_until

    lo, hi = day_bounds(DAY)
    assert parse_until("", lo, hi) == hi - pd.Timedelta(microseconds=1)
    assert parse_until("2013-01-15T17:00:00Z", lo, hi) == pd.Timestamp("2013-01-15T17:00:00Z")
    assert parse_until("2013-01-15T12:00:00-05:00", lo, hi) == pd.Timestamp("2013-01-15T17:00:00Z")
    assert parse_until("2013-01-15T04:00:00", lo, hi) < lo  # 23:00 the day before, local: nothing known yet
    assert parse_until("2026-01-01T00:00:00Z", lo, hi) == hi - pd.Timedelta(microseconds=1)
    with pytest.raises(ValueError, match="ISO"):
        parse_until("tomorrow", lo, hi)


def test_the_hour_bucket_holds_the_row_in_force_at_every_moment():
    """bucket_by_hour: for any t up to `until`, the latest row of t's hour bucket stamped <= t is the latest
    row of the day stamped <= t (what the point-in-time join and the online lookup read)."""
    from components.features.day_so_far import bucket_by_hour, day_bounds

    lo, _ = day_bounds(DAY)
    rng = np.random.default_rng(3)
    stamps = lo + pd.to_timedelta(np.sort(rng.integers(0, 20 * 3600, 60)), unit="s")
    rows = pd.DataFrame({"origin": rng.choice(["EWR", "JFK"], 60), "event_timestamp": stamps.as_unit("us"),
                         "v": np.arange(60, dtype="float64")})
    rows = pd.concat([rows, pd.DataFrame({"origin": ["EWR", "JFK"], "event_timestamp": [lo, lo], "v": [-1.0, -2.0]})])
    until = lo + pd.Timedelta(hours=18)
    kept = rows[rows["event_timestamp"] <= until]
    buckets = bucket_by_hour(kept, ["origin"], lo, until)
    for t in lo + pd.to_timedelta(rng.integers(0, 18 * 3600, 200), unit="s"):
        for origin in ("EWR", "JFK"):
            mine = kept[(kept["origin"] == origin) & (kept["event_timestamp"] <= t)]
            want = mine.sort_values("event_timestamp")["v"].iloc[-1]
            b = buckets[(buckets["origin"] == origin) & (buckets["as_of_hour"] == t.strftime("%Y-%m-%dT%H"))
                        & (buckets["event_timestamp"] <= t)]
            assert b.sort_values("event_timestamp")["v"].iloc[-1] == want, (t, origin)
    assert buckets["as_of_hour"].max() == until.strftime("%Y-%m-%dT%H")  # no bucket past the replay's end
