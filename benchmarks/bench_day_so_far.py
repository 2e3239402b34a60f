"""Item 6 of issue 16, measured: the daily-features model vs the same model with the day-so-far
features (feature_repo/definitions.py PUSHED_VIEWS) on one window, same split, same seed.

    PYTHONPATH=. .venv/bin/python -m benchmarks.bench_day_so_far --home /tmp/h --ingest 2013-01-07 2013-03-31 \
        --window 2013-01-07 2013-03-31

Sets the home up (ingest, validate, features build, push-outcomes over the window: the offline log),
then for `base` (signature.NUMERIC without the pushed features, in this process only) and `new`
(with them, as shipped) builds the training set through Feast, trains and evaluates with the shipped gate.
Prints one JSON line per step with its seconds and, per variant, the AUCs and the blessing.
"""

from __future__ import annotations

import argparse
import json
import os
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", required=True)
    ap.add_argument("--ingest", nargs=2, required=True)
    ap.add_argument("--window", nargs=2, required=True)
    ap.add_argument("--variants", default="base,new")
    args = ap.parse_args()
    os.environ["FLIGHTDECK_HOME"] = args.home
    os.environ.setdefault("FLIGHTDECK_PROFILE", "local")
    from components.contracts import signature
    from components.contracts.stages import (
        EvaluateParams,
        FeaturesBuildParams,
        IngestParams,
        PushOutcomesParams,
        TrainingSetParams,
        TrainParams,
        ValidateParams,
    )
    from components.core.store import open_store
    from components.features.feast_repo import definitions_module

    store = open_store()
    (ws, we), (i0, i1) = args.window, args.ingest

    def timed(name, fn, *a):
        t = time.perf_counter()
        out = fn(*a)
        print(json.dumps({"step": name, "seconds": round(time.perf_counter() - t, 1)}), flush=True)
        return out

    if not os.path.exists(os.path.join(args.home, "setup.done")):
        from components.data.ingest import ingest
        from components.data.validate import validate
        from components.features.build import build
        from components.features.push import push_outcomes

        timed("ingest", ingest, IngestParams(start=i0, end=i1), store)
        timed("validate", validate, ValidateParams(start=i0, end=i1), store)
        timed("features-build", build, FeaturesBuildParams(start=ws, end=we), store)
        r = timed("push-outcomes", push_outcomes, PushOutcomesParams(date=ws, end=we), store)
        print(json.dumps({"push": {k: r[k] for k in ("rows", "compute_seconds", "online_seconds",
                                                     "offline_seconds", "online_pushes")}}), flush=True)
        open(os.path.join(args.home, "setup.done"), "w").close()
    new = [f for v in definitions_module().PUSHED_VIEWS.values() for f in v.feature_names]
    from components.features.training_set import training_set
    from components.model.evaluate import evaluate
    from components.model.train import train

    for variant in args.variants.split(","):
        # In place: every module holding the list sees it. `base` = the daily inputs only, `new` = with the day so far.
        signature.NUMERIC[:] = [c for c in signature.NUMERIC if c not in new] + (new if variant == "new" else [])
        timed(f"{variant} training-set", training_set, TrainingSetParams(start=ws, end=we), store)
        tr = timed(f"{variant} train", train, TrainParams(train_start=ws, train_end=we), store)
        ev = timed(f"{variant} evaluate", evaluate, EvaluateParams(run_id=tr["run_id"], importance_repeats=0), store)
        print(json.dumps({"variant": variant, "numeric": len(signature.NUMERIC), "roc_auc": ev["roc_auc"],
                          "baselines": ev["baselines_roc_auc"], "blessed": ev["blessed"], "failed": ev["failed"],
                          "eval": ev["uri"]}), flush=True)


if __name__ == "__main__":
    main()
