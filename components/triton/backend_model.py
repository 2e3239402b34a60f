"""Triton python-backend model of the `cpu` target: runs the version's TorchScript file (model.pt).

Copied into <repo>/<model>/<version>/model.py by components.triton.repository; it runs in
Triton's python-backend stub, under the project's venv Python (torch comes from there).
Tensors cross the stub by DLPack, not numpy: with numpy 2 the numpy path returns empty arrays.
Every request of a dynamic batch is scored in one forward pass, then split back.
"""

import json
import os

import torch
import triton_python_backend_utils as pb_utils
from torch.utils.dlpack import from_dlpack, to_dlpack

INPUTS = ("numeric", "categorical")
OUTPUT = "probability"


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        torch.set_num_threads(int(params.get("torch_threads", "1") or 1))
        path = os.path.join(args["model_repository"], args["model_version"], "model.pt")
        # A file that is not TorchScript fails here, so the load fails and the deploy rolls back.
        self.model = torch.jit.load(path, map_location="cpu").eval()

    def execute(self, requests):
        try:
            tensors = [
                [from_dlpack(pb_utils.get_input_tensor_by_name(r, name).to_dlpack()) for name in INPUTS]
                for r in requests
            ]
            sizes = [t[0].shape[0] for t in tensors]
            numeric = torch.cat([t[0] for t in tensors]) if len(tensors) > 1 else tensors[0][0]
            categorical = torch.cat([t[1] for t in tensors]) if len(tensors) > 1 else tensors[0][1]
            with torch.inference_mode():
                out = self.model(numeric, categorical)
            if out.dim() != 2 or out.shape[0] != numeric.shape[0] or out.shape[1] != 1:
                raise ValueError(f"the model returned shape {tuple(out.shape)}, expected [{numeric.shape[0]}, 1]")
            out = out.to(torch.float32)
        except Exception as exc:  # one clear error per request; the server keeps running
            message = f"model failed on this batch: {type(exc).__name__}: {exc}"
            # One TritonError object per response: the backend frees each with its response, and a
            # shared one is freed twice (the 2.45 server then crashes with SIGSEGV).
            return [pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message))
                    for _ in requests]
        responses = []
        for part in torch.split(out, sizes):
            tensor = pb_utils.Tensor.from_dlpack(OUTPUT, to_dlpack(part.contiguous()))
            responses.append(pb_utils.InferenceResponse(output_tensors=[tensor]))
        return responses

    def finalize(self):
        self.model = None
