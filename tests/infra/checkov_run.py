"""Run checkov once over a directory and return its failed and skipped checks."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHECKOV = REPO / ".venv-tools" / "bin" / "checkov"


def run_checkov(directory: Path, framework: str) -> dict:
    if not CHECKOV.exists():
        raise RuntimeError(f"{CHECKOV} is missing: run scripts/bootstrap.sh (it installs .venv-tools)")
    # --skip-download: no calls home for guidelines or external modules (there is no internet here).
    # No --quiet: it drops the passed checks from the JSON, and tests look at what was checked.
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    out = subprocess.run(
        [str(CHECKOV), "-d", str(directory), "--framework", framework, "--skip-download",
         "--compact", "-o", "json"],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    if out.returncode not in (0, 1):
        raise RuntimeError(f"checkov exited {out.returncode}: {out.stderr[-2000:]}")
    reports = json.loads(out.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed, skipped, passed = [], [], []
    summary = {"resource_count": 0, "parsing_errors": 0, "passed": 0}
    for report in reports:
        results = report.get("results", {})
        failed += results.get("failed_checks", [])
        skipped += results.get("skipped_checks", [])
        passed += results.get("passed_checks", [])
        for key in summary:
            summary[key] += (report.get("summary") or report).get(key, 0)
    return {"failed": failed, "skipped": skipped, "passed_checks": passed, **summary}


def describe(checks: list[dict]) -> str:
    return "\n".join(
        f"{c['check_id']} {c['check_name']} -- {c['resource']} ({c['file_path']})" for c in checks
    )


def skip_reason(check: dict) -> str:
    """The reason written with a skip (checkov says "No comment provided" when there is none)."""
    return (check.get("check_result") or {}).get("suppress_comment", "")
