"""Model benchmarks: training speed on the full-year window with 2 CPU threads, and holdout ROC AUC
of the MLP against logistic regression, LightGBM and the carrier-rate heuristic on the same split.

The training set comes from the real data stages: ingest -> validate (Great Expectations) ->
features build -> features training-set (Feast point-in-time join).

Torch's CPU thread pool degrades badly when its threads share cores with other busy processes
(OpenMP workers wait on each other), so training defaults to 1 thread; one epoch on 2 threads is
measured in the same run as the comparison, and the machine's load average goes into the notes.
"""

from __future__ import annotations

import json
import logging
import os

from benchmarks.harness import Context, Result, peak_rss_mb, timed
from components.contracts import layout

# The source has no weather after 2013-12-30 18:00 local: validation (rightly) refuses 2013-12-31.
FULL_YEAR = ("2013-01-01", "2013-12-30")
QUICK = ("2013-01-01", "2013-02-28")
THREADS = 2  # the cores of the machine: the 2-thread epoch is measured against the default 1


def build_training_set(store, start: str, end: str) -> None:
    from components.contracts.stages import (
        FeaturesBuildParams,
        IngestParams,
        TrainingSetParams,
        ValidateParams,
    )
    from components.data.ingest import ingest
    from components.data.validate import validate
    from components.features.build import build
    from components.features.training_set import training_set

    ingest(IngestParams(start=start, end=end), store)
    validate(ValidateParams(start=start, end=end), store)
    build(FeaturesBuildParams(start=start, end=end), store)
    training_set(TrainingSetParams(start=start, end=end), store)


def run(ctx: Context) -> list[Result]:
    import torch

    from components.contracts.stages import EvaluateParams, TrainParams
    from components.core.store import open_store
    from components.model.evaluate import evaluate
    from components.model.train import assign_split, deterministic, fit, load_training_set, train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    start, end = QUICK if ctx.quick else FULL_YEAR
    store = open_store()
    with timed() as t_data:
        build_training_set(store, start, end)
    load_before = os.getloadavg()[0]
    with timed() as t_train:
        result = train(TrainParams(train_start=start, train_end=end, device="cpu"), store)  # default: 1 thread
    metrics = json.loads(store.read_published(f"runs/train/{result['run_id']}", "metrics.json"))
    evaluation = evaluate(EvaluateParams(run_id=result["run_id"], model_name="bench", threads=THREADS), store)
    report = json.loads(store.read_published(layout.eval_run_prefix(evaluation["eval_id"]), "evaluation.json"))
    mlp, base = report["model"]["overall"], report["baselines"]
    lgb = base["lightgbm"]
    rows = metrics["rows"]
    window = f"{start}..{end}: {rows['train']:,} train / {rows['val']:,} val / {rows['test']:,} holdout rows"
    # Baseline in the same run: one epoch of the same training on 2 threads.
    frame, _, _ = load_training_set(store, start, end)
    one = TrainParams(train_start=start, train_end=end, threads=THREADS, device="cpu", max_epochs=1)
    with deterministic(one.seed, one.threads):
        _, one_metrics = fit(one, frame, assign_split(frame, json.loads(
            store.read_published(f"runs/train/{result['run_id']}", "params.json"))["split"]), torch.device("cpu"))
    load = f"load average {load_before:.1f} before training, {os.getloadavg()[0]:.1f} after (2 cores)"
    notes = f"training set from the real data stages; {window}; {load}"
    rss = peak_rss_mb()
    fit_seconds = sum(h["seconds"] for h in metrics["history"])
    out = [
        Result("model", "MLP training, seconds per epoch (1 thread, the default)", metrics["seconds_per_epoch"], "s",
               baseline_name="same epoch on 2 threads", baseline_value=one_metrics["seconds_per_epoch"],
               higher_is_better=False, notes=f"{metrics['epochs_run']} epochs, best {metrics['best_epoch']}; {notes}",
               peak_rss_mb=rss, extra={"epochs": metrics["history"], "training_set_seconds": t_data.seconds,
                                        "train_stage_seconds": t_train.seconds}),
        Result("model", "MLP training throughput (rows x epochs / s, 1 thread)", metrics["train_rows_per_second"],
               "rows/s", baseline_name="same training on 2 threads",
               baseline_value=one_metrics["train_rows_per_second"], notes=notes, peak_rss_mb=rss),
        Result("model", "MLP whole fit (all epochs, early stopping)", fit_seconds, "s",
               baseline_name="LightGBM whole fit", baseline_value=lgb["fit_seconds"], higher_is_better=False,
               notes=notes, peak_rss_mb=rss),
        Result("model", "holdout ROC AUC: MLP", mlp["roc_auc"], "AUC", baseline_name="LightGBM",
               baseline_value=lgb["roc_auc"], target="MLP within 0.01 ROC AUC of LightGBM",
               notes=f"gap {mlp['roc_auc'] - lgb['roc_auc']:+.4f} "
                     f"({'met' if mlp['roc_auc'] >= lgb['roc_auc'] - 0.01 else 'NOT met'}); "
                     f"ECE {mlp['ece']:.4f}, log loss {mlp['log_loss']:.4f}; {notes}",
               peak_rss_mb=rss, extra={"model": mlp, "baselines": base, "decision": report["decision"]}),
    ]
    for name, label in (("logistic_regression", "logistic regression"), ("carrier_rate", "carrier-rate heuristic")):
        out.append(Result("model", f"holdout ROC AUC: {label}", base[name]["roc_auc"], "AUC", baseline_name="LightGBM",
                          baseline_value=lgb["roc_auc"], notes=f"same split; ECE {base[name]['ece']:.4f}",
                          peak_rss_mb=rss))
    table = ["| model | ROC AUC | PR AUC | log loss | Brier | ECE | fit s |", "|---|---|---|---|---|---|---|"]
    for name, m in [("MLP (this model)", {**mlp, "fit_seconds": fit_seconds})] + list(base.items()):
        table.append(f"| {name} | {m['roc_auc']:.4f} | {m['pr_auc']:.4f} | {m['log_loss']:.4f} | {m['brier']:.4f} | "
                     f"{m['ece']:.4f} | {m['fit_seconds']:.1f} |")
    (ctx.out_dir / "model_holdout.md").write_text(f"Holdout comparison, {notes}\n\n" + "\n".join(table) + "\n")
    return out
