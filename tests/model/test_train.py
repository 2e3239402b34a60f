"""train: determinism, the exported module against the eager one, preprocessing inside the module."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from components.contracts import layout
from components.contracts.results import TrainResult
from components.contracts.signature import CATEGORICAL, LABEL, NUMERIC, to_tensors
from components.model.network import load_scripted, predict
from components.model.train import assign_split, deterministic, fit, load_training_set, time_split


@pytest.fixture(scope="module")
def frame_and_split(model_home, train_params):
    frame, _, _ = load_training_set(model_home["store"], train_params.train_start, train_params.train_end)
    bounds = time_split(frame["sched_dep_utc"], train_params.val_fraction, train_params.test_fraction)
    return frame, assign_split(frame, bounds)


def _fit(params, frame, split):
    with deterministic(params.seed, params.threads):
        return fit(params, frame, split, torch.device("cpu"))


def test_same_data_and_seed_give_identical_weights(frame_and_split, train_params):
    frame, split = frame_and_split
    params = replace(train_params, max_epochs=2, patience=5)
    first, m1 = _fit(params, frame, split)
    second, m2 = _fit(params, frame, split)
    other, _ = _fit(replace(params, seed=params.seed + 1), frame, split)
    a, b, c = first.state_dict(), second.state_dict(), other.state_dict()
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), f"{name} differs between two runs with the same seed"
    assert m1["history"] == [{**h, "seconds": m1["history"][i]["seconds"]} for i, h in enumerate(m2["history"])]
    # the check has teeth: another seed does change the weights
    assert not torch.equal(a["heads.0.embedding.weight"], c["heads.0.embedding.weight"])


def test_ensemble_member_k_is_the_single_model_of_seed_plus_k(frame_and_split, train_params):
    """Head k trains from seed + k alone: an ensemble's members are the one-head models of those seeds,
    weight for weight and calibration for calibration, and its output is their weighted mean probability."""
    frame, split = frame_and_split
    params = replace(train_params, max_epochs=2, patience=5, members=2, linear_weight=0.25)
    ensemble, metrics = _fit(params, frame, split)
    assert ensemble.kinds == ["mlp", "mlp", "linear"]
    assert ensemble.weights.tolist() == [0.375, 0.375, 0.25]
    for k in (0, 1):
        alone, _ = _fit(replace(params, members=1, linear_weight=0.0, seed=params.seed + k), frame, split)
        for name, value in alone.heads[0].state_dict().items():
            assert torch.equal(ensemble.heads[k].state_dict()[name], value), (k, name)
        assert torch.equal(ensemble.calibration[k], alone.calibration[0])
    assert [h["seed"] for h in metrics["heads"]] == [params.seed, params.seed + 1, params.seed + 2]
    assert len(ensemble.heads[2].mlp) == 1  # the linear head: no hidden layer
    sample = frame[split == "test"].head(500)
    numeric, categorical = (torch.from_numpy(a) for a in to_tensors(sample))
    with torch.no_grad():
        x, rows = ensemble.preprocess(numeric, categorical)
        per_head = torch.sigmoid(ensemble.raw_logits(x, rows) * ensemble.calibration[:, 0] + ensemble.calibration[:, 1])
        expected = per_head @ torch.tensor([0.375, 0.375, 0.25])
    torch.testing.assert_close(torch.from_numpy(predict(ensemble, sample)), expected, rtol=0, atol=1e-6)


def test_time_split_is_ordered_and_disjoint(frame_and_split):
    frame, split = frame_and_split
    t = frame["sched_dep_utc"]
    assert t[split == "train"].max() < t[split == "val"].min()
    assert t[split == "val"].max() < t[split == "test"].min()
    shares = pd.Series(split).value_counts(normalize=True)
    assert 0.6 < shares["train"] < 0.8 and 0.1 < shares["test"] < 0.2


def test_published_run_has_every_output(trained):
    store, result = trained["store"], trained["result"]
    assert set(result) == set(TrainResult.__annotations__)  # the declared result, no more, no less
    prefix = layout.train_run_prefix(result["run_id"])
    files = store.published(prefix)["files"]
    assert set(files) >= {"model.pt", "signature.json", "metrics.json", "params.json", "lineage.json",
                          "curves.png", "reference.parquet"}
    assert files["model.pt"]["sha256"] == result["model_sha256"]
    signature = json.loads(store.read_published(prefix, "signature.json"))
    assert [i["name"] for i in signature["inputs"]] == ["numeric", "categorical"]
    assert signature["inputs"][0]["features"] == NUMERIC and signature["inputs"][1]["features"] == CATEGORICAL
    assert set(signature["vocab_sizes"]) == set(CATEGORICAL) and min(signature["vocab_sizes"].values()) >= 3
    assert store.read_published(prefix, "curves.png")[:8] == b"\x89PNG\r\n\x1a\n"
    reference = pd.read_parquet(io.BytesIO(store.read_published(prefix, "reference.parquet")))
    assert len(reference) == 500 and set(NUMERIC + CATEGORICAL + [LABEL, "prediction"]) <= set(reference.columns)
    metrics = json.loads(store.read_published(prefix, "metrics.json"))
    assert 1 <= metrics["epochs_run"] <= 3
    assert len(metrics["history"]) == sum(h["epochs_run"] for h in metrics["heads"])
    assert [h["head"] for h in metrics["heads"]] == ["mlp-0", "mlp-1", "linear-2"]  # TEST_TRAIN: 2 members
    assert metrics["val_auc"] > 0.55  # real signal, even after a few epochs on two weeks


def _module(trained):
    store, result = trained["store"], trained["result"]
    data = store.read_bytes(store.published_key(layout.train_run_prefix(result["run_id"]), "model.pt"))
    return load_scripted(data, result["model_sha256"], "test")


def test_torchscript_matches_eager_model(frame_and_split, train_params):
    from components.model.network import export_bytes

    frame, split = frame_and_split
    model, _ = _fit(replace(train_params, max_epochs=1), frame, split)
    scripted = load_scripted(data := export_bytes(model), __import__("hashlib").sha256(data).hexdigest(), "test")
    sample = frame.sample(2000, random_state=0)
    numeric, categorical = (torch.from_numpy(a) for a in to_tensors(sample))
    numeric[::5, 1] = float("nan")  # missing weather in some rows
    categorical[::7, 2] = 12345  # unknown destinations
    with torch.no_grad():
        eager = model.eval()(numeric, categorical)
        script = scripted(numeric, categorical)
    assert script.shape == (2000, 1) and script.dtype == torch.float32
    torch.testing.assert_close(script, eager, rtol=0, atol=1e-6)


def test_normalisation_and_vocabularies_live_in_the_module(trained, frame_and_split):
    module = _module(trained)
    frame, split = frame_and_split
    train_rows = frame[split == "train"]
    # the statistics inside the module are the training period's, computed here independently
    np.testing.assert_allclose(module.mean.numpy(), train_rows[NUMERIC].mean().to_numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(module.std.numpy(), train_rows[NUMERIC].std(ddof=0).replace(0, 1).to_numpy(),
                               rtol=1e-3, atol=1e-4)
    # a row at the training means standardises to 0, with no missing flags
    numeric = module.mean.unsqueeze(0).clone()
    _, categorical = to_tensors(train_rows.head(1))
    x, rows = module.preprocess(numeric, torch.from_numpy(categorical))
    assert torch.allclose(x, torch.zeros_like(x), atol=1e-5)
    assert (rows[0] != module.offsets).all(), "known categories must not map to the unknown slot"
    # raw values with NaN and categories never seen: the unknown slots, finite probabilities
    raw = train_rows.head(300).copy()
    raw[NUMERIC] = np.nan
    raw["carrier"], raw["dest"], raw["sched_hour"] = "ZZ", "NOWHERE", 99
    num, cat = (torch.from_numpy(a) for a in to_tensors(raw))
    x, rows = module.preprocess(num, cat)
    assert torch.equal(x[:, len(NUMERIC):], torch.ones(300, len(NUMERIC)))  # every missing indicator set
    for j in (CATEGORICAL.index("carrier"), CATEGORICAL.index("dest"), CATEGORICAL.index("sched_hour")):
        assert (rows[:, j] == module.offsets[j]).all()
    p = predict(module, raw)
    assert np.isfinite(p).all() and ((p > 0) & (p < 1)).all()
    # and on untouched raw rows the module gives sane, varied probabilities
    p = predict(module, frame[split == "test"])
    assert 0.05 < p.mean() < 0.6 and p.std() > 0.02


def _val_loss(model, frame, split, pos_weight: float) -> float:
    import torch.nn.functional as F

    val = frame[split == "val"]
    numeric, categorical = (torch.from_numpy(a) for a in to_tensors(val))
    with torch.no_grad():
        x, rows = model.preprocess(numeric, categorical)
        logits = model.raw_logit(x, rows)
    y = torch.from_numpy(val[LABEL].to_numpy(dtype=np.float32))
    return float(F.binary_cross_entropy_with_logits(logits, y, pos_weight=torch.tensor(pos_weight)))


def test_early_stopping_ends_the_run_and_keeps_the_best_epoch(frame_and_split, train_params):
    """A learning rate high enough to overfit two weeks quickly: the run stops `patience` epochs after
    its best validation loss, long before max_epochs, and the model it returns is that best epoch's."""
    frame, split = frame_and_split
    params = replace(train_params, max_epochs=25, patience=2, learning_rate=0.03, hidden="64,32", members=1,
                     linear_weight=0.0)
    model, metrics = _fit(params, frame, split)
    history = metrics["history"]
    losses = [h["val_loss"] for h in history]
    best = int(np.argmin(losses)) + 1
    assert metrics["best_epoch"] == best
    assert metrics["epochs_run"] == len(history) == best + params.patience < params.max_epochs
    assert all(v >= min(losses) - 1e-5 for v in losses[best:])  # no better epoch after the best one
    # The returned weights are the best epoch's, not the last one's (calibration does not touch raw logits).
    assert _val_loss(model, frame, split, metrics["pos_weight"]) == pytest.approx(min(losses), rel=1e-5)
    assert losses[-1] > min(losses) + 1e-5


def test_class_imbalance_weighting(frame_and_split, train_params):
    """Positives weighted by negatives/positives of the training period; the calibration then brings the
    inflated probabilities back to the observed rate. Unweighted: pos_weight 1."""
    frame, split = frame_and_split
    y_train = frame.loc[split == "train", LABEL]
    ratio = float((y_train == 0).sum() / (y_train == 1).sum())
    assert ratio > 1.5  # late flights are the minority: the weighting matters here
    params = replace(train_params, max_epochs=2, patience=5, members=1, linear_weight=0.0)
    weighted, m_w = _fit(params, frame, split)
    plain, m_p = _fit(replace(params, balance_classes=False), frame, split)
    assert m_w["pos_weight"] == pytest.approx(ratio, rel=1e-9) and m_p["pos_weight"] == 1.0

    val = frame[split == "val"]
    numeric, categorical = (torch.from_numpy(a) for a in to_tensors(val))

    def raw_and_calibrated(model):
        with torch.no_grad():
            x, rows = model.preprocess(numeric, categorical)
            raw = torch.sigmoid(model.raw_logit(x, rows)).mean().item()
        return raw, float(predict(model, val).mean())

    raw_w, cal_w = raw_and_calibrated(weighted)
    raw_p, cal_p = raw_and_calibrated(plain)
    assert raw_w > raw_p + 0.1, (raw_w, raw_p)  # the weighting raises the uncalibrated odds...
    # ...calibration undoes most of it on the validation period alone (measured: raw 0.378 vs 0.204, calibrated
    # 0.139 vs 0.177), and all of it on the window it is fitted to (below)
    assert abs(cal_w - cal_p) < (raw_w - raw_p) / 3, (cal_w, cal_p, raw_w, raw_p)
    # The intercept sets the mean probability over the train and validation periods to their late rate.
    window = frame[split != "test"]
    for model in (weighted, plain):
        assert float(predict(model, window).mean()) == pytest.approx(float(window[LABEL].mean()), abs=1e-4)
    assert m_w["heads"][0]["calibration"]["b"] < m_p["heads"][0]["calibration"]["b"]  # by a lower intercept


def test_the_device_is_cuda_where_torch_sees_one_else_cpu_and_a_bad_choice_is_refused():
    from components.contracts.errors import StageFailed
    from components.model.train import pick_device

    has_cuda = torch.cuda.is_available()
    assert pick_device("auto").type == ("cuda" if has_cuda else "cpu")
    assert pick_device("cpu").type == "cpu"
    if has_cuda:
        assert pick_device("cuda").type == "cuda"
    else:
        with pytest.raises(StageFailed, match="--device cuda was asked for, but torch sees no CUDA device"):
            pick_device("cuda")
    with pytest.raises(StageFailed, match="'tpu' is not one of auto, cpu, cuda"):
        pick_device("tpu")
