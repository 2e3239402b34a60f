"""Small TorchScript models with the serving signature, made in the test (the real ones come from train)."""

from __future__ import annotations

import io

import torch

from components.contracts import signature


class TinyDelayModel(torch.nn.Module):
    """numeric FP32 [N, F] (NaN = missing, imputed to 0) + categorical INT64 [N, C] -> P(late) FP32 [N, 1]."""

    def __init__(self, n_numeric: int = len(signature.NUMERIC), n_categorical: int = len(signature.CATEGORICAL)):
        super().__init__()
        self.hidden = torch.nn.Linear(n_numeric * 2 + n_categorical, 16)
        self.out = torch.nn.Linear(16, 1)

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        missing = torch.isnan(numeric)
        x = torch.where(missing, torch.zeros_like(numeric), numeric).clamp(-1e4, 1e4) / 1000.0
        c = torch.remainder(categorical, 1009).to(torch.float32) / 1009.0
        h = torch.relu(self.hidden(torch.cat([x, missing.to(torch.float32), c], dim=1)))
        return torch.sigmoid(self.out(h))


def scripted_bytes(seed: int, n_numeric: int = len(signature.NUMERIC)) -> bytes:
    torch.manual_seed(seed)
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(TinyDelayModel(n_numeric=n_numeric).eval()), buf)
    return buf.getvalue()


def wrong_signature_bytes(seed: int = 99) -> bytes:
    """A valid TorchScript model that expects 7 numeric features instead of the signature's."""
    return scripted_bytes(seed, n_numeric=7)


def in_process(data: bytes, numeric, categorical):
    module = torch.jit.load(io.BytesIO(data)).eval()
    with torch.inference_mode():
        return module(torch.from_numpy(numeric), torch.from_numpy(categorical))[:, 0].numpy()


class PassSizeEcho(torch.nn.Module):
    """Answers, for every row, the number of rows in the forward pass that scored it; a request holding the
    categorical code POISON fails. Shows how the serving side split (or merged) the requests."""

    POISON: int = 424242

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        if bool((categorical == 424242).any()):
            raise RuntimeError("poisoned row in this request")
        n = numeric.shape[0]
        return torch.full((n, 1), float(n), dtype=torch.float32)


def pass_size_echo_bytes() -> bytes:
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(PassSizeEcho().eval()), buf)
    return buf.getvalue()


def delay_model_bytes(rows: int = 4000, seed: int = 3) -> bytes:
    """The real architecture (embeddings, vocabularies, 128-64 MLP) with statistics from parity-like rows."""
    from components.model.network import DelayModel, build_vocabularies, export_bytes, numeric_statistics
    from components.serving.parity import parity_sample

    num, cat = parity_sample(rows, seed=seed)
    torch.manual_seed(seed)
    return export_bytes(DelayModel(build_vocabularies(torch.from_numpy(cat), 1), *numeric_statistics(torch.from_numpy(num))))
