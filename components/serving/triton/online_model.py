"""Triton python-backend model `<model>_online`: one flight in, its late probability out, inside Triton.

Copied into <repo>/<model>_online/1/model.py by components.serving.triton.online. Per request:
  1. the flight (JSON, UTF-8 bytes in a UINT8 tensor: with numpy 2 the stub's BYTES/numpy path
     returns garbage, DLPack works) -> features from the Feast online store through the same
     feature service as training (components.features.retrieval.online_features)
  2. routing from the serving state (re-read every few seconds): the serving version, or the
     canary's challenger for its share of flight_ids
  3. a BLS call to the TorchScript model `<model>` at that version; in shadow/canary the
     challenger is scored too and its outputs are appended to a buffer flushed to the store (every
     FLUSH_ROWS rows or FLUSH_S seconds, and when the model is unloaded), each row recorded with the
     routing that served it
Outputs: probability FP32 [1], model_version INT64 [1]. Triton's metrics cover the whole path.
The stub inherits Triton's environment, so the FLIGHTDECK_* settings are the server's.
"""

import json
import threading
import time

import torch
import triton_python_backend_utils as pb_utils
from torch.utils.dlpack import from_dlpack, to_dlpack

STATE_TTL_S = 2.0
FLUSH_ROWS = 500
FLUSH_S = 30.0


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        torch.set_num_threads(1)
        from components.core.settings import load_settings
        from components.core.store import open_store

        self.settings = load_settings()
        self.model = params.get("target_model") or self.settings.model_name
        self.store = open_store(self.settings)
        self._state, self._state_at = None, 0.0
        self._shadow, self._flushed_at = [], time.monotonic()
        self._lock = threading.Lock()
        # Open the Feast store now, so the first request does not pay for it; a store that is
        # not there yet (features never applied) is opened on the first request instead.
        try:
            # Modules, not names: tests/infra/lock_closure.py resolves these without importing them.
            from components.features import feast_repo
            feast_repo.feature_store(self.settings)
        except Exception as exc:
            pb_utils.Logger.log_warn(f"Feast online store not available yet: {exc}")

    # -- helpers -------------------------------------------------------------------------
    def _serving_state(self):
        from components.serving.triton.online import OnlineRefusal
        from components.serving.triton.routing import read_state

        now = time.monotonic()
        if self._state is None or now - self._state_at > STATE_TTL_S:
            try:
                state, _ = read_state(self.store, self.model)
            except Exception as exc:
                raise OnlineRefusal("serving state unavailable: the artifact store could not be read; "
                                    "retry later (details in the Triton log)") from exc
            if state is None:
                raise OnlineRefusal(f"no version of {self.model} is deployed")
            self._state, self._state_at = state, now
        return self._state

    def _score(self, version, numeric, categorical):
        request = pb_utils.InferenceRequest(
            model_name=self.model, model_version=int(version), requested_output_names=["probability"],
            inputs=[pb_utils.Tensor.from_dlpack("numeric", to_dlpack(numeric)),
                    pb_utils.Tensor.from_dlpack("categorical", to_dlpack(categorical))])
        response = request.exec()
        if response.has_error():
            from components.serving.triton.online import OnlineRefusal

            raise OnlineRefusal(f"scoring failed in {self.model} version {version} (details in the Triton log)") \
                from RuntimeError(response.error().message())
        return float(from_dlpack(response.output_tensors()[0].to_dlpack()).reshape(-1)[0])

    def _one(self, request):
        import numpy as np

        from components.features import redis_auth, retrieval
        from components.serving.triton.online import OnlineRefusal, parse_flight, row_tensors
        from components.serving.triton.routing import canary_mask, canary_salt

        raw = from_dlpack(pb_utils.get_input_tensor_by_name(request, "flight").to_dlpack())
        flight = parse_flight(bytes(raw.numpy().tobytes()))  # BadFlight names the field
        try:
            row = retrieval.online_features(flight, self.settings)
        except redis_auth.OnlineStoreRefused as exc:  # a configuration problem the operator must hear about, in plain words
            raise OnlineRefusal(f"feature lookup unavailable: the online feature store {exc.problem}; retry later "
                                "once that is fixed (details in the Triton log)") from exc
        except Exception as exc:
            raise OnlineRefusal("feature lookup unavailable: the online feature store could not be read; "
                                "retry later (details in the Triton log)") from exc
        numeric, categorical = row_tensors(row)  # no DataFrame per request (see online.row_tensors)
        numeric, categorical = torch.from_numpy(numeric), torch.from_numpy(categorical)
        state = self._serving_state()
        version = state.serving
        ch = state.challenger
        champion = self._score(state.serving, numeric, categorical)
        probability = champion
        if ch is not None:
            challenger = self._score(ch.version, numeric, categorical)
            flight_id = str(row.get("flight_id") or flight.get("flight_id", ""))
            if ch.mode == "canary" and canary_mask(np.array([flight_id]), ch.fraction, canary_salt(state))[0]:
                probability, version = challenger, ch.version
            with self._lock:  # with the state that routed it: a later flush must not record it as another mode
                self._shadow.append((state, flight_id, champion, challenger, version))
        return probability, version

    def _flush(self, force=False):
        with self._lock:
            due = self._shadow and (force or len(self._shadow) >= FLUSH_ROWS
                                    or time.monotonic() - self._flushed_at > FLUSH_S)
            if not due:
                return
            rows, self._shadow, self._flushed_at = self._shadow, [], time.monotonic()
        import numpy as np

        from components.serving.triton.routing import record_challenger

        groups = {}  # one record file per routing (serving version, challenger version, mode) seen
        for state, *row in rows:
            key = (state.serving, state.challenger.version, state.challenger.mode)
            groups.setdefault(key, (state, []))[1].append(row)
        for state, group in groups.values():
            ids, champ, chall, served = zip(*group, strict=True)
            record_challenger(self.store, state, np.array(ids), np.array(champ, dtype=np.float32),
                              np.array(chall, dtype=np.float32), np.array(served, dtype=np.int64))

    # -- Triton entry points ---------------------------------------------------------------
    def execute(self, requests):
        responses = []
        for request in requests:
            try:
                probability, version = self._one(request)
                responses.append(pb_utils.InferenceResponse(output_tensors=[
                    pb_utils.Tensor.from_dlpack("probability", to_dlpack(torch.tensor([probability], dtype=torch.float32))),
                    pb_utils.Tensor.from_dlpack("model_version", to_dlpack(torch.tensor([version], dtype=torch.int64))),
                ]))
            except Exception as exc:  # a fresh TritonError per response (a shared one is freed twice)
                responses.append(pb_utils.InferenceResponse(
                    output_tensors=[], error=pb_utils.TritonError(f"online prediction failed: {_answer(exc)}")))
        try:
            self._flush()
        except Exception as exc:  # recording shadow outputs must never fail a served request
            pb_utils.Logger.log_warn(f"could not record challenger outputs: {exc}")
        return responses

    def finalize(self):
        try:
            self._flush(force=True)
        except Exception as exc:  # the model is going away regardless; say what was lost
            pb_utils.Logger.log_warn(f"could not record {len(self._shadow)} challenger outputs at unload: {exc}")


def _answer(exc):
    """The client's message for a failed request: the refusal's own message, which names the problem;
    anything unexpected only as a reference. The details (redacted: a Redis URL may hold a password)
    go to the Triton log."""
    import traceback
    import uuid

    from components.core.redact import redact
    from components.serving.triton.online import BadFlight, OnlineRefusal

    if isinstance(exc, BadFlight):
        return str(exc)
    ref = uuid.uuid4().hex[:12]
    details = redact("".join(traceback.format_exception(exc)))
    pb_utils.Logger.log_error(f"online prediction failed (ref {ref}): {details}")
    if isinstance(exc, OnlineRefusal):
        return f"{exc} [ref {ref}]"
    return f"internal error in the online model [ref {ref}; details in the Triton log]"
