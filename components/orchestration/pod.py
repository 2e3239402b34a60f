"""The operator of a stage pod in Airflow's kubernetes runtime (components/orchestration/runtime.py).

Imported only when FLIGHTDECK_RUNTIME=kubernetes: the cncf-kubernetes provider it needs takes
seconds to import (docs/AIRFLOW.md, "Parse time"; docs/BENCHMARKS.md, Figures the code relies on).
"""

from __future__ import annotations

import copy

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.utils.xcom_sidecar import PodDefaults

from components.core.cluster import CONTAINER_SECURITY_CONTEXT


class StagePodOperator(KubernetesPodOperator):
    """A KubernetesPodOperator whose xcom sidecar meets Pod Security Standards "restricted" too.

    The stage writes its JSON result to /airflow/xcom/return.json and the provider's sidecar
    serves it to Airflow (the downstream tasks and branches read it as XCom). cncf-kubernetes
    10.5 takes the sidecar's image and resources from the connection but gives no way to set its
    security context (utils/xcom_sidecar.py builds it with none), and the namespace's admission
    would refuse the pod. The sidecar only runs `sh` with `sleep` and answers `cat`/`kill`
    through exec, so the stage container's restricted context fits it as is.
    """

    def build_pod_request_obj(self, context=None):
        pod = super().build_pod_request_obj(context)
        for container in pod.spec.containers:
            if container.name == PodDefaults.SIDECAR_CONTAINER_NAME:
                container.security_context = copy.deepcopy(CONTAINER_SECURITY_CONTEXT)
        return pod
