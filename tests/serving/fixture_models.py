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


class KnownRisk(torch.nn.Module):
    """P(late) = sigmoid(slope * z - 1), z = (numeric[:, 0] - 50) / 20 (missing: 50): the rollout tests draw
    labels from slope 1.5, so a version's slope says how good it is. `spin` square matmuls per request make
    it slow (the latency guardrail) without changing its outputs."""

    def __init__(self, slope: float, spin: int = 0):
        super().__init__()
        self.slope = slope
        self.spin = spin
        self.w = torch.nn.Parameter(torch.eye(256) * 0.5, requires_grad=False)

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        h = self.w
        for _ in range(self.spin):
            h = torch.tanh(h @ self.w)
        z = (torch.nan_to_num(numeric[:, 0], nan=50.0) - 50.0) / 20.0
        p = torch.sigmoid(self.slope * z - 1.0) + 0.0 * h[0, 0]
        return p.unsqueeze(1)


def known_risk_bytes(slope: float, spin: int = 0) -> bytes:
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(KnownRisk(slope, spin).eval()), buf)
    return buf.getvalue()
