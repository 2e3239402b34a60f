"""One replayed day seen closely, for `make demo` (components/ops/demo.py): the day scored run by run
at the prediction times of its flights, and one online prediction before and after the morning's
outcomes were pushed. Also the demo's screen helpers (say, step, task logs to a file)."""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time


def say(text: str = "") -> None:
    print(text, flush=True)


def step(title: str) -> None:
    say(f"\n== {title} " + "=" * max(0, 74 - len(title)))


@contextlib.contextmanager
def task_logs_to(path):
    """dag.test() prints every task's log; keep them in a file and this screen for the story."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for f in (fd, *saved):
            os.close(f)


# The local replay scores a day in runs this long (each covering several scoring intervals; the prediction
# times stay on the scoring interval's grid, the rule is the same as in production's hourly runs).
REPLAY_RUN_HOURS = 6


def interval_by_interval(day: str, log_path) -> None:
    """One replayed day scored run by run, as the scheduled batch_prediction runs score it: each run's
    window, the prediction times of its flights and their count; then what the old 04:00 rule leaked."""
    from components.contracts import prediction_time as pt
    from components.contracts import schema
    from components.contracts.stages import STAGES
    from components.core.settings import load_settings
    from components.serving.batch_predict import read_predictions

    settings = load_settings()
    minutes = settings.scoring_interval_minutes
    step(f"2b. {day} interval by interval (prediction time = departure - {settings.lead_time_hours:g} h, floored "
         f"to the {minutes}-min scoring interval; replay runs of {REPLAY_RUN_HOURS} h)")
    grid = pt.day_intervals(schema.parse_day(day), minutes)
    per_run = max(1, REPLAY_RUN_HOURS * 60 // minutes)
    total, t0 = 0, time.perf_counter()
    for i in range(0, len(grid), per_run):
        start, end = grid[i][0], grid[min(i + per_run, len(grid)) - 1][1]
        t1 = time.perf_counter()
        with task_logs_to(log_path):
            result = STAGES["predict-batch"].run(start=start.isoformat(), end=end.isoformat())
        local = [t.tz_convert(schema.LOCAL_TZ).strftime("%H:%M") for t in (start, end)]
        scored = read_predictions(day)
        mine = scored[(scored["prediction_time"] >= start) & (scored["prediction_time"] < end)]
        window = (f"prediction times {mine['prediction_time'].min().tz_convert(schema.LOCAL_TZ):%H:%M} .. "
                  f"{mine['prediction_time'].max().tz_convert(schema.LOCAL_TZ):%H:%M}" if len(mine) else
                  "no flight")
        say(f"   run [{local[0]}, {local[1]}) local: {result['rows']:4d} flights, {window}, "
            f"{time.perf_counter() - t1:.1f} s")
        total += result["rows"]
    say(f"   {total} flights in {-(-len(grid) // per_run)} runs, {time.perf_counter() - t0:.1f} s "
        f"(every flight once: {len(read_predictions(day))} in the day's partition)")
    old, now, rows, changed = observed_after(day, read_predictions(day), settings.lead_time_hours)
    say(f"   weather observed after the moment of prediction: {old} of {rows} rows under the old rule (one run at "
        f"04:00 UTC, features as of departure - lead; {changed} with a temperature other than the one known at "
        f"04:00), {now} now")


def observed_after(day: str, scored, lead_time_hours: float) -> tuple[int, int, int, int]:
    """Rows whose weather features come from an observation made after the prediction was made, recomputed
    from the validated weather with pandas: under the old rule (the day scored by one run at 04:00 UTC, each
    flight's features as of departure - lead) and now (each flight at its prediction time); and, of the old
    rule's rows, those whose temperature differs from the latest one observed by 04:00 UTC (what that run
    could have used). Returns (old, now, rows, old rows with a different temperature)."""
    import pandas as pd

    from components.contracts import schema
    from components.core.store import open_store
    from components.features.validated import read_days

    d = schema.parse_day(day)
    weather = read_days(open_store(), "weather", schema.day_range(d - pd.Timedelta(days=1), d), required=False)
    obs = weather[["origin", "time_hour", "temp"]].assign(time_hour=lambda w: pd.to_datetime(w["time_hour"], utc=True))
    obs = obs.assign(observed=obs["time_hour"]).sort_values("time_hour")
    rows = scored[["origin", "sched_dep_utc", "prediction_time"]].copy()
    rows["sched_dep_utc"] = pd.to_datetime(rows["sched_dep_utc"], utc=True).astype("datetime64[ns, UTC]")
    rows["prediction_time"] = pd.to_datetime(rows["prediction_time"], utc=True).astype("datetime64[ns, UTC]")
    obs["time_hour"] = obs["time_hour"].astype("datetime64[ns, UTC]")

    def latest(at):
        left = rows.assign(at=at).sort_values("at")
        out = pd.merge_asof(left, obs.rename(columns={"time_hour": "at"}), on="at", by="origin",
                            direction="backward", tolerance=pd.Timedelta(hours=6))
        return out
    old_run = pd.Timestamp(d.isoformat(), tz="UTC") + pd.Timedelta(hours=4)
    old = latest(rows["sched_dep_utc"] - pd.Timedelta(hours=lead_time_hours))
    now = latest(rows["prediction_time"])
    known = obs[(obs["time_hour"] <= old_run) & (obs["time_hour"] > old_run - pd.Timedelta(hours=6))]
    temp_at_run = known.sort_values("time_hour").groupby("origin")["temp"].last()
    later = old["observed"] > old_run
    changed = later & (old["temp"] != old["origin"].map(temp_at_run))
    return (int(later.sum()), int((now["observed"] > now["prediction_time"]).sum()), len(rows), int(changed.sum()))




def _afternoon_flight(day: str, origin: str = "EWR", local_hour: int = 17) -> dict:
    """A real flight of `day` from `origin` with a tail number, the one scheduled nearest `local_hour`."""
    import pandas as pd

    from components.contracts import schema
    from components.core.store import open_store
    from components.features.validated import read_days

    flights = read_days(open_store(), "flights", [schema.parse_day(day)], required=True)
    flights = flights[(flights["origin"] == origin) & flights["tailnum"].notna()].copy()
    local = pd.to_datetime(flights["sched_dep_utc"], utc=True).dt.tz_convert(schema.LOCAL_TZ)
    minutes = local.dt.hour * 60 + local.dt.minute
    f = flights.loc[(minutes - local_hour * 60).abs().idxmin()]
    return {"flight_id": f.flight_id, "carrier": f.carrier, "origin": f.origin, "dest": f.dest,
            "tailnum": f.tailnum, "distance": float(f.distance),
            "sched_dep_utc": pd.Timestamp(f.sched_dep_utc).tz_convert("UTC").isoformat()}


def _fmt(value: float) -> str:
    return "missing" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3g}"


def online_before_after(day: str, log_path, number: int = 5) -> dict | None:
    """A step of the demo (`number`): one afternoon flight of `day` predicted online through Triton at its prediction
    time, before the morning's outcomes were pushed (the day replayed up to local midnight, as the day's
    first scoring run pushes it) and after (push-outcomes up to that prediction time, as the day's later
    scoring runs push it). Prints the day-so-far features the online
    model read (the same lookup, in this process) and the two probabilities. Returns the flight, its
    prediction time and both readings ({"features", "probability", "model_version"} before and after), or
    None when a step failed (said on the screen)."""
    import pandas as pd

    from components.contracts import prediction_time as pt
    from components.contracts import schema, signature
    from components.contracts.stages import STAGES
    from components.core.settings import load_settings
    from components.features.retrieval import online_features

    settings = load_settings()
    d = schema.parse_day(day)
    nxt = (d + pd.Timedelta(days=1)).isoformat()
    step(f"{number}. one online prediction on {day}, before and after the morning's outcomes were pushed (Triton's online "
         "model: Feast online store + the served version); before = the day pushed up to local midnight (the "
         "hourly airport views have no row for the prediction's hour yet: missing)")
    t0 = time.perf_counter()
    with task_logs_to(log_path):
        # The day arrives as the scheduled runs would have brought it (its first departures after midnight
        # belong to the next day's partition, so that one is ingested too).
        STAGES["ingest"].run(start=day, end=nxt)
        STAGES["validate"].run(start=day, end=nxt)
        STAGES["features-build"].run(start=day, end=day)
        STAGES["features-materialize"].run(end=day)
    flight = _afternoon_flight(day)
    at = pt.prediction_time(flight["sched_dep_utc"], settings.lead_time_hours, settings.scoring_interval_minutes)
    local = lambda ts: pd.Timestamp(ts).tz_convert(schema.LOCAL_TZ).strftime("%H:%M")  # noqa: E731
    say(f"   ({day} ingested, validated, built and materialized: {time.perf_counter() - t0:.0f} s)")
    say(f"   flight {flight['flight_id']} {flight['origin']}->{flight['dest']} tail {flight['tailnum']}, departs "
        f"{local(flight['sched_dep_utc'])} local; prediction time {local(at)} local")
    midnight = pd.Timestamp(day, tz=schema.LOCAL_TZ).tz_convert("UTC")
    try:
        # Before: the day as its first scoring run leaves it (the replay up to local midnight: each key's reset
        # row). The hour-bucketed airport views have no row for the prediction's hour yet: missing.
        with task_logs_to(log_path):
            STAGES["features-push-outcomes"].run(date=day, until=midnight.isoformat())
        before_features = online_features(flight, settings)
        before = STAGES["predict-online"].run(**flight)
        with task_logs_to(log_path):
            pushed = STAGES["features-push-outcomes"].run(date=day, until=at.isoformat())
        after_features = online_features(flight, settings)
        after = STAGES["predict-online"].run(**flight)
    except Exception as exc:  # the demo reports it and goes on to the status screen
        say(f"   online prediction failed: {exc}")
        return None
    say(f"   pushed: {pushed['events']} outcome events of {day} up to {local(at)} local, in event-time order "
        f"({pushed['online_pushes']} online pushes, {pushed['seconds']} s)")
    say("   " + "day-so-far input".ljust(36) + "at midnight".rjust(14) + f"at {local(at)}".rjust(14))
    for name in signature.DAY_SO_FAR:
        say("   " + name.ljust(36) + _fmt(before_features.get(name)).rjust(14) + _fmt(after_features.get(name)).rjust(14))
    say("   " + "P(late), served by".ljust(36) + f"{before['probability']:.4f} v{before['model_version']}".rjust(14)
        + f"{after['probability']:.4f} v{after['model_version']}".rjust(14))
    say(f"   latency through Triton: {before['latency_ms']} ms before, {after['latency_ms']} ms after")
    return {"flight": flight, "prediction_time": at, "pushed": pushed,
            "before": {"features": before_features, **before}, "after": {"features": after_features, **after}}
