"""airflow_local_settings.py of the cluster's Airflow (the chart's airflowLocalSettings value,
set by infra/terraform/modules/platform).

Airflow imports this module once when a process starts (airflow.settings.initialize). The DAG
processor forks one child per DAG file parse, so what is imported here is paid once per
processor, not once per parse: the cncf-kubernetes provider, which the stage tasks of the
kubernetes runtime need (components/orchestration/pod.py), takes seconds to import (docs/AIRFLOW.md,
"Parse time"; docs/BENCHMARKS.md, Figures the code relies on); the DAG files themselves then parse in well under a second.
tests/airflow/test_dag_integrity.py runs this file before timing the kubernetes-mode parse.
"""

import importlib

# Nothing is exported: Airflow copies every public name of this module into airflow.settings
# and treats functions as cluster policies.
__all__: list[str] = []

importlib.import_module("airflow.providers.cncf.kubernetes.operators.pod")
