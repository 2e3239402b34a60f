"""Triton python-backend model of the `cpu` target: runs the version's TorchScript file (model.pt).

Copied into <repo>/<model>/<version>/model.py by components.serving.triton.repository; it runs in
Triton's python-backend stub, under the project's venv Python (torch comes from there).
Tensors cross the stub by DLPack, not numpy: with numpy 2 the numpy path returns empty arrays.

Loading: model.pt is read once, its sha256 compared with model.pt.sha256 (written beside it by
deploy from the registry's record), and only those bytes are loaded; a mismatch or a missing
checksum fails the load (so the deploy rolls back).
Scoring: each request of a dynamic batch is scored on its own, in forward passes of at most
`forward_chunk` rows (a config parameter, components.model.network.FORWARD_CHUNK by default), into one
preallocated output: no concatenation copy, and large batches stay in the forward pass's fast
regime (fresh activation buffers for 32k rows cost more than the per-call overhead of 4k), and
the stub's allocator is told to keep freed memory (see keep_freed_memory) so those buffers are
reused rather than page-faulted in again on every pass. An error in one request answers that
request only.
"""

import ctypes
import hashlib
import io
import json
import os

import torch
import triton_python_backend_utils as pb_utils
from torch.utils.dlpack import from_dlpack, to_dlpack

INPUTS = ("numeric", "categorical")
OUTPUT = "probability"
CHECKSUM_SUFFIX = ".sha256"
# glibc mallopt parameters. In the stub, memory freed after a forward pass is handed back to the
# system at once (the adaptive thresholds do not apply there), so every pass of a few thousand rows
# page-faults its activation buffers in afresh, at a large cost in rows/s (figures: docs/BENCHMARKS.md,
# Figures the code relies on).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed value: buffers below it come from the heap and are reused
TRIM_THRESHOLD = 256 << 20  # free memory kept by the stub before any is returned


def keep_freed_memory():
    """Let the stub's allocator reuse freed buffers (True when glibc took both settings)."""
    try:
        libc = ctypes.CDLL(None)
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) & bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    except (OSError, AttributeError):  # not glibc: nothing to tune
        return False


def read_verified(path):
    """The bytes of `path`, refused unless their sha256 is the one in `path` + CHECKSUM_SUFFIX."""
    try:
        with open(path + CHECKSUM_SUFFIX) as fh:
            expected = fh.read().split()[0].strip().lower()
    except (FileNotFoundError, IndexError):
        raise RuntimeError(f"refusing to load {path}: its checksum file {os.path.basename(path)}{CHECKSUM_SUFFIX} "
                           "is missing or empty (deploy writes it with the registry's sha256)") from None
    with open(path, "rb") as fh:
        data = fh.read()
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise RuntimeError(f"refusing to load {path}: sha256 checksum mismatch, the file's sha256 is {actual} but "
                           f"the registry's (in {os.path.basename(path)}{CHECKSUM_SUFFIX}) is {expected}; the file "
                           "was changed or corrupted after deploy wrote it")
    return data


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        torch.set_num_threads(int(params.get("torch_threads", "1") or 1))
        if not keep_freed_memory():
            pb_utils.Logger.log_warn("mallopt unavailable: forward passes will page-fault their buffers afresh")
        # 0 (a config written before the parameter existed): each request in one forward pass.
        self.chunk = int(params.get("forward_chunk", "0") or 0)
        # A KIND_GPU instance runs the model on its GPU; Triton still hands the inputs over in CPU memory
        # (the python backend's default), so each request's inputs are moved there and the output back.
        self.device = (torch.device("cuda", int(args["model_instance_device_id"]))
                       if args.get("model_instance_kind") == "GPU" else torch.device("cpu"))
        path = os.path.join(args["model_repository"], args["model_version"], "model.pt")
        # A checksum mismatch, or a file that is not TorchScript, fails here: the load fails, the deploy rolls back.
        self.model = torch.jit.load(io.BytesIO(read_verified(path)), map_location=self.device).eval()
        pb_utils.Logger.log_info(f"{args['model_name']} version {args['model_version']}: model.pt runs on {self.device}")

    def _score(self, request):
        numeric, categorical = (from_dlpack(pb_utils.get_input_tensor_by_name(request, name).to_dlpack()).to(self.device)
                                for name in INPUTS)
        n = numeric.shape[0]
        chunk = self.chunk if 0 < self.chunk < n else n
        out = None
        with torch.inference_mode():
            for i in range(0, n, chunk):
                y = self.model(numeric[i:i + chunk], categorical[i:i + chunk])
                rows = min(chunk, n - i)
                if y.dim() != 2 or y.shape[0] != rows or y.shape[1] != 1:
                    raise ValueError(f"the model returned shape {tuple(y.shape)}, expected [{rows}, 1]")
                if chunk == n:  # one pass: its output is the answer
                    out = y.to(torch.float32).contiguous()
                    break
                if out is None:
                    out = torch.empty((n, 1), dtype=torch.float32)
                out[i:i + rows] = y
        if out is None:  # a request of zero rows
            out = torch.empty((0, 1), dtype=torch.float32)
        out = out.cpu()  # a GPU instance's output goes back in CPU memory (no-op on CPU)
        return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor.from_dlpack(OUTPUT, to_dlpack(out))])

    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                responses.append(self._score(request))
            except Exception as exc:  # this request's error only; the server keeps running
                # One TritonError object per response: the backend frees each with its response, and a
                # shared one is freed twice (the 2.45 server then crashes with SIGSEGV).
                responses.append(pb_utils.InferenceResponse(
                    output_tensors=[], error=pb_utils.TritonError(f"model failed on this request: "
                                                                  f"{type(exc).__name__}: {exc}")))
        return responses

    def finalize(self):
        self.model = None
