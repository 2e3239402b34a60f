"""The delay model: an MLP over embeddings of the categorical keys and standardised numeric features.

Everything that turns raw feature values into network inputs lives inside the module as buffers
(category vocabularies, means and standard deviations, the calibration of the output), so the
exported TorchScript file is the whole model: serving feeds the raw values of the signature in
components.contracts.signature and cannot skew from training.

- categorical: INT64 [N, C], packed by signature.encode_category. Each column has a sorted
  vocabulary; torch.searchsorted finds a value's slot, anything not in the vocabulary (unseen,
  rare at training time, or missing) maps to the column's "unknown" slot 0.
- numeric: FP32 [N, F], NaN (or +-inf) = missing. Standardised with the training statistics;
  missing values become the training mean (0 after standardisation) plus a missing indicator.
- heads: a seed ensemble of MLPs and one linear head over the shared preprocessing; each head's logit
  has its own Platt calibration fitted on the validation period, and P(late) is the weighted mean of
  the calibrated probabilities (components.model.fitting fits them; docs/MODEL.md says why).
- output: P(late) FP32 [N, 1].

A model file is only ever loaded through `load_scripted`, which checks its sha256 first.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import torch
from torch import nn

from components.contracts.errors import StageFailed
from components.contracts.signature import CATEGORICAL, NUMERIC, to_tensors
from components.core.store import sha256_bytes

# Pads the per-column vocabularies to one rectangular tensor; encode_category never produces it.
PAD = torch.iinfo(torch.int64).max
# Standardised values beyond this are clipped: one absurd input must not saturate the whole network.
Z_CLIP = 10.0


class ModelIntegrityError(StageFailed):
    """A model file does not match the checksum recorded for it; it is refused, never loaded."""


def build_vocabularies(categorical: torch.Tensor, min_count: int) -> list[torch.Tensor]:
    """Per column, the sorted packed values seen at least min_count times (missing values excluded)."""
    vocabs = []
    for j in range(categorical.shape[1]):
        values, counts = torch.unique(categorical[:, j], sorted=True, return_counts=True)
        keep = (counts >= min_count) & (values != 0) & (values != -1)  # 0 / -1: missing (see to_tensors)
        vocabs.append(values[keep])
    return vocabs


def numeric_statistics(numeric: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation per column over the finite values (NaN-safe, vectorised)."""
    finite = torch.isfinite(numeric)
    x = torch.where(finite, numeric, torch.zeros_like(numeric)).double()
    n = finite.sum(0).clamp(min=1).double()
    mean = x.sum(0) / n
    var = (torch.where(finite, x - mean, torch.zeros_like(x)) ** 2).sum(0) / n
    std = var.sqrt()
    std = torch.where(std > 1e-6, std, torch.ones_like(std))  # constant or all-missing column
    return mean.float(), std.float()


class Head(nn.Module):
    """One member of the ensemble: its own embeddings of the categories and a network on top. With no
    hidden layer and embeddings of width 1 it is a logistic regression on the one-hot categories."""

    def __init__(self, n_rows: int, n_columns: int, width: int, hidden: tuple[int, ...], embedding_dim: int,
                 dropout: float):
        super().__init__()
        self.embedding = nn.Embedding(n_rows, embedding_dim)
        layers: list[nn.Module] = []
        width = width + n_columns * embedding_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([x, self.embedding(rows).flatten(1)], dim=1)).squeeze(1)


class DelayModel(nn.Module):
    """Shared preprocessing, then `members` MLP heads and (linear_weight > 0) one linear head; each head's
    logit is Platt-calibrated on its own and P(late) is the weighted mean of the calibrated probabilities:
    the MLPs share 1 - linear_weight, the linear head has linear_weight (why: docs/MODEL.md)."""

    __constants__ = ["z_clip"]
    # Python-side construction details: not part of the scripted model.
    __jit_ignored_attributes__ = ["head_args", "architecture", "kinds"]

    def __init__(
        self,
        vocabularies: list[torch.Tensor],
        mean: torch.Tensor,
        std: torch.Tensor,
        hidden: tuple[int, ...] = (128, 64),
        embedding_dim: int = 8,
        dropout: float = 0.1,
        members: int = 1,
        linear_weight: float = 0.0,
    ):
        super().__init__()
        if members < 1 or not 0.0 <= linear_weight < 1.0:
            raise ValueError(f"members must be >= 1 and linear_weight in [0, 1), got {members} and {linear_weight}")
        self.z_clip = Z_CLIP
        n_cat = len(vocabularies)
        longest = max(1, max(len(v) for v in vocabularies))
        vocab = torch.full((n_cat, longest), PAD, dtype=torch.int64)
        for j, v in enumerate(vocabularies):
            vocab[j, : len(v)] = v
        sizes = torch.tensor([len(v) for v in vocabularies], dtype=torch.int64)
        # Column j owns embedding rows offsets[j] .. offsets[j] + sizes[j]; the first is its "unknown".
        offsets = torch.cumsum(torch.cat([torch.zeros(1, dtype=torch.int64), sizes[:-1] + 1]), 0)
        self.register_buffer("vocab", vocab)
        self.register_buffer("vocab_sizes", sizes)
        self.register_buffer("offsets", offsets)
        self.register_buffer("mean", mean.float().clone())
        self.register_buffer("std", std.float().clone())
        self.head_args = (int((sizes + 1).sum()), n_cat, 2 * mean.numel())
        self.architecture = {"hidden": tuple(hidden), "embedding_dim": embedding_dim, "dropout": dropout}
        kinds = ["mlp"] * members + (["linear"] if linear_weight > 0 else [])
        self.kinds = kinds
        self.heads = nn.ModuleList([self.new_head(kind) for kind in kinds])
        weights = [(1.0 - linear_weight) / members] * members + ([linear_weight] if linear_weight > 0 else [])
        self.register_buffer("weights", torch.tensor(weights))
        # Platt scaling (a, b) of each head's logit, fitted after training (identity until then).
        self.register_buffer("calibration", torch.tensor([[1.0, 0.0]] * len(kinds)))

    @torch.jit.ignore
    def new_head(self, kind: str) -> Head:
        """A freshly initialised head of this model's shape (from torch's current random state)."""
        if kind == "linear":
            return Head(*self.head_args, hidden=(), embedding_dim=1, dropout=0.0)
        return Head(*self.head_args, **self.architecture)

    @torch.jit.export
    def preprocess(self, numeric: torch.Tensor, categorical: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw inputs -> (standardised numeric with missing indicators, embedding row per category)."""
        finite = torch.isfinite(numeric)
        z = (numeric - self.mean) / self.std
        z = torch.where(finite, z, torch.zeros_like(z)).clamp(-self.z_clip, self.z_clip)
        x = torch.cat([z, (~finite).to(z.dtype)], dim=1)
        values = categorical.t().contiguous()  # [C, N]: one batched searchsorted over all columns
        pos = torch.searchsorted(self.vocab, values)
        found = pos < self.vocab_sizes.unsqueeze(1)
        hit = torch.gather(self.vocab, 1, pos.clamp(max=self.vocab.shape[1] - 1)) == values
        local = torch.where(found & hit, pos + 1, torch.zeros_like(pos))
        rows = (local + self.offsets.unsqueeze(1)).t()
        return x, rows

    @torch.jit.export
    def raw_logits(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Every head's logit before calibration, from preprocessed inputs: shape [N, heads]."""
        return torch.stack([head(x, rows) for head in self.heads], dim=1)

    @torch.jit.export
    def raw_logit(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """The heads' weighted mean logit before calibration: shape [N] (the single head's, for one head)."""
        return self.raw_logits(x, rows) @ self.weights

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        x, rows = self.preprocess(numeric, categorical)
        logits = self.raw_logits(x, rows) * self.calibration[:, 0] + self.calibration[:, 1]
        return (torch.sigmoid(logits) @ self.weights).unsqueeze(1)


def shipped_architecture() -> dict:
    """The architecture the train stage ships by default (TrainParams' defaults), as DelayModel arguments:
    what benchmarks build so they measure the model that serves."""
    from dataclasses import fields

    from components.contracts.stages import TrainParams

    d = {f.name: f.default for f in fields(TrainParams)}
    return {"hidden": tuple(int(w) for w in d["hidden"].split(",")), "embedding_dim": d["embedding_dim"],
            "dropout": d["dropout"], "members": d["members"], "linear_weight": d["linear_weight"]}


def export_bytes(model: DelayModel) -> bytes:
    """The model as a TorchScript file (on CPU, in eval mode)."""
    model = model.cpu().eval()
    scripted = torch.jit.script(model)
    buf = io.BytesIO()
    torch.jit.save(scripted, buf)
    return buf.getvalue()


def load_scripted(data: bytes, expected_sha256: str, where: str) -> torch.jit.ScriptModule:
    """Load a TorchScript model after checking its bytes against the sha256 recorded for it."""
    actual = sha256_bytes(data)
    if not expected_sha256 or actual != expected_sha256:
        raise ModelIntegrityError(
            f"refusing to load the model at {where}: its sha256 is {actual} but the record says "
            f"{expected_sha256 or '(nothing)'}. The file was changed or corrupted after it was written; "
            "re-register it from its training run, or roll back to another version."
        )
    module = torch.jit.load(io.BytesIO(data), map_location="cpu")
    module.eval()
    return module


# Rows per forward pass when scoring many rows, in this process (predict_arrays) and in Triton's cpu
# target (repository.TargetOptions.forward_chunk): larger passes pay for fresh activation buffers,
# smaller ones for the per-call overhead (figures: docs/BENCHMARKS.md, Figures the code relies on).
FORWARD_CHUNK = 4096


def predict(module, frame: pd.DataFrame, batch_size: int = FORWARD_CHUNK) -> np.ndarray:
    """P(late) for every row of a frame with the signature's feature columns (raw values)."""
    numeric, categorical = to_tensors(frame)
    return predict_arrays(module, numeric, categorical, batch_size)


def predict_arrays(module, numeric: np.ndarray, categorical: np.ndarray, batch_size: int = FORWARD_CHUNK) -> np.ndarray:
    """P(late) [N] float32, in forward passes of batch_size rows written into one preallocated output."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive row count, got {batch_size}")
    num, cat = torch.from_numpy(np.ascontiguousarray(numeric)), torch.from_numpy(np.ascontiguousarray(categorical))
    n = len(num)
    out = torch.empty(n, dtype=torch.float32)
    with torch.inference_mode():
        for i in range(0, n, batch_size):
            out[i : i + batch_size] = module(num[i : i + batch_size], cat[i : i + batch_size])[:, 0]
    return out.numpy()


def feature_names() -> dict[str, list[str]]:
    return {"numeric": list(NUMERIC), "categorical": list(CATEGORICAL)}
