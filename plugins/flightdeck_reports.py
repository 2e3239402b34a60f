"""Airflow plugin: flightdeck's reports in the Airflow UI.

Airflow loads this file from its plugins folder (`make airflow` sets AIRFLOW__CORE__PLUGINS_FOLDER to this
folder; the Airflow image copies it to /opt/airflow/plugins). It mounts the report pages
(components/orchestration/report_app.py) in the API server at /flightdeck; the stage tasks carry the
extra links to them themselves (components/orchestration/report_links.py), so links and pages work in
both runtimes. Every Airflow process imports plugins, so this file stays light: the web app is built
only when the API server asks for it.
"""

from __future__ import annotations

from functools import cached_property

from airflow.plugins_manager import AirflowPlugin

from components.orchestration.report_links import MOUNT


class FlightdeckReports(AirflowPlugin):
    name = "flightdeck_reports"

    @cached_property
    def fastapi_apps(self) -> list[dict]:
        from components.orchestration.report_app import create_app

        return [{"app": create_app(), "url_prefix": MOUNT, "name": "flightdeck reports"}]
