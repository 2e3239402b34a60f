"""What a stage pod gets from the cluster: one definition for both runtimes (Airflow's
KubernetesPodOperator pods, components/orchestration/runtime.py, and the KFP steps,
pipelines/definitions.py), matching what infra/terraform/modules/platform creates.

- Settings: the non-secret FLIGHTDECK_* settings come from the ConfigMap `flightdeck-settings`
  (Airflow: envFrom; KFP: one key -> env var mapping per key), created by Terraform in every
  namespace where stage pods run. Its keys are `settings_env_names()`.
- Secrets, by reference (secretKeyRef / kfp.kubernetes.use_secret_as_env), each only in the pods
  of the stages that use it (`stage_secret_env`): the Triton admin key from the Secret
  `triton-admin-key` (key `admin-key`) for the stages that call Triton's model-control API; the
  Redis online store's password (FLIGHTDECK_REDIS_PASSWORD, a secret setting) from the Secret
  `flightdeck-redis-auth` (key `password`) for the stages that open the online store. Secret
  settings are never ConfigMap keys.
- Pod Security Standards "restricted" (the flightdeck namespace enforces it): non-root uid 10001
  (the images' user), no privilege escalation, every capability dropped, RuntimeDefault seccomp,
  a read-only root filesystem with an emptyDir at /tmp for everything a stage writes locally
  (FLIGHTDECK_HOME, HOME: Feast/DuckDB/torch caches, MPLCONFIGDIR: matplotlib).

Importing this module is cheap (dataclasses and the settings module only): DAG files and the
KFP definitions import it at parse time.
"""

from __future__ import annotations

from dataclasses import fields

SETTINGS_CONFIG_MAP = "flightdeck-settings"
TRITON_ADMIN_SECRET = "triton-admin-key"  # modules/platform kubernetes_secret_v1.triton_admin_key
TRITON_ADMIN_SECRET_KEY = "admin-key"
ADMIN_KEY_ENV = "FLIGHTDECK_TRITON_ADMIN_KEY"  # = components.serving.triton.server.ADMIN_KEY_ENV (tests check it)
# Stages that call Triton's model-control API (load/unload, repository index), so need the key.
NEEDS_TRITON_ADMIN_KEY = ("deploy", "rollout-start", "rollout-advance", "rollout-abort")  # the rollout deploys
# The Redis online store's AUTH password (modules/platform kubernetes_secret_v1.redis_auth, from
# the online_store module's token); the Triton chart's pods read the same Secret (values redisAuthSecret).
REDIS_AUTH_SECRET = "flightdeck-redis-auth"
REDIS_AUTH_SECRET_KEY = "password"
REDIS_PASSWORD_ENV = "FLIGHTDECK_REDIS_PASSWORD"  # = components.core.settings Settings.redis_password (tests check it)
# Stages that open the Redis online store: features-materialize (components/features/materialize.py) and
# features-push-outcomes (components/features/push.py), which write it (tests/features/test_redis_auth.py). Not features-build: its `feast apply` is
# partial, so Feast 0.67 passes no tables to delete and its Redis store's update() never connects
# (a test counts the connections). Not predict-online: its pod only calls Triton, whose online model
# reads the store in the Triton pods (infra/k8s/triton gets the Secret too). Not
# features-training-set, predict-batch (offline store only), monitor or status (they read the
# materialization record in the artifact store, never Redis).
NEEDS_REDIS_PASSWORD = ("features-materialize", "features-push-outcomes")
# The Optuna study storage of `flightdeck tune` (an SQLAlchemy URL with its password: the RDS PostgreSQL):
# a secret setting, from this Secret, for the tune stage only.
TUNING_DB_SECRET = "flightdeck-tuning-db"
TUNING_DB_SECRET_KEY = "url"
TUNING_STORAGE_ENV = "FLIGHTDECK_TUNING_STORAGE_URL"  # = Settings.tuning_storage_url
NEEDS_TUNING_DB = ("tune",)

# Settings fields that are not cluster settings: `home` is the local profile's root (a pod's
# FLIGHTDECK_HOME is its scratch directory, set below); `s3_endpoint_url` names an S3-compatible
# server (MinIO, moto) for local and test setups, while EKS talks to AWS S3 itself.
NOT_CLUSTER_SETTINGS = {"home": "local profile root", "s3_endpoint_url": "S3-compatible server off AWS"}
# Settings read from the environment outside components/core/settings.py that a pod needs: where the
# Triton Service is (components/serving/triton/replicas.py). KFP steps run in the kubeflow namespace, so
# the namespace must be given (replicas.py falls back to the pod's own namespace).
EXTRA_ENV_SETTINGS = ("FLIGHTDECK_TRITON_SERVICE", "FLIGHTDECK_TRITON_NAMESPACE")


def settings_env_names() -> tuple[str, ...]:
    """The keys of the `flightdeck-settings` ConfigMap: env var names, so envFrom works as is.
    Never a secret setting: those come from Secrets (`stage_secret_env`)."""
    from components.core.settings import Settings

    own = tuple(f"FLIGHTDECK_{f.name.upper()}" for f in fields(Settings)
                if f.name not in NOT_CLUSTER_SETTINGS and not f.metadata.get("secret"))
    return own + EXTRA_ENV_SETTINGS


def stage_secret_env(stage: str) -> list[tuple[str, str, str]]:
    """(env var, Secret, key) of every secret the stage's pod gets, by reference."""
    out = []
    if stage in NEEDS_TRITON_ADMIN_KEY:
        out.append((ADMIN_KEY_ENV, TRITON_ADMIN_SECRET, TRITON_ADMIN_SECRET_KEY))
    if stage in NEEDS_REDIS_PASSWORD:
        out.append((REDIS_PASSWORD_ENV, REDIS_AUTH_SECRET, REDIS_AUTH_SECRET_KEY))
    if stage in NEEDS_TUNING_DB:
        out.append((TUNING_STORAGE_ENV, TUNING_DB_SECRET, TUNING_DB_SECRET_KEY))
    return out


def stage_pod_labels(stage: str) -> dict[str, str]:
    """Labels of a stage's pod; Triton's NetworkPolicy (infra/k8s/triton) admits part-of=flightdeck."""
    return {"app.kubernetes.io/part-of": "flightdeck", "flightdeck/stage": stage}


# The images' user (containers/*.Dockerfile: useradd --uid 10001, USER 10001:10001).
STAGE_UID = 10001
STAGE_GID = 10001
SCRATCH_VOLUME = "scratch"
SCRATCH_PATH = "/tmp"
SCRATCH_SIZE_LIMIT = "4Gi"
# Everything a stage writes outside the artifact store goes under the scratch emptyDir.
SCRATCH_ENV = {
    "FLIGHTDECK_HOME": f"{SCRATCH_PATH}/flightdeck",
    "HOME": SCRATCH_PATH,  # ~/.cache (torch, pip), ~/.duckdb (DuckDB extensions), ~/.feast
    "MPLCONFIGDIR": f"{SCRATCH_PATH}/matplotlib",  # train draws curves.png
}

# Kubernetes API form (camelCase), as a pod spec carries it.
POD_SECURITY_CONTEXT = {
    "runAsNonRoot": True,
    "runAsUser": STAGE_UID,
    "runAsGroup": STAGE_GID,
    "fsGroup": STAGE_GID,  # the projected IRSA token and the emptyDir are readable by the stage's group
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY_CONTEXT = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "privileged": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "runAsUser": STAGE_UID,
    "runAsGroup": STAGE_GID,
    "seccompProfile": {"type": "RuntimeDefault"},
}
