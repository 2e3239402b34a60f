"""Orchestration adapters: how Airflow runs the stages. `dags/` imports only this layer.

  runtime  stage tasks for both runtimes (local: in-process; kubernetes: KubernetesPodOperator)
  pod      the stage pod specs of the kubernetes runtime
  steps    the few decisions the DAGs make themselves (dates, branches, asset events)
  notify   the failure notifier (Slack webhook)
  local    running the DAGs in-process (dag.test()) on the local profile
  report_links  the stage tasks' extra links to their reports (evaluate, monitor, validate)
  report_pages  those reports as HTML pages, read from the artifact store
  report_app    the web app of the Airflow plugin (plugins/flightdeck_reports.py) serving them

The DAGs, runtimes, dates and failures: docs/AIRFLOW.md; the layers: docs/ARCHITECTURE.md.
"""
