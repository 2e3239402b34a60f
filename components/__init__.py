"""flightdeck: the ML lifecycle, as a layered package.

Each folder is a layer that imports only the layers below it (tests/core/test_layers.py checks it):

  contracts < core < data < features < model < serving | monitoring < orchestration | backtest < ops

Every stage has a typed spec (contracts/stages.py) and one entry function in its layer, called
by the CLI (ops/cli.py), the Airflow tasks (orchestration/) and the KFP components (pipelines/).
"""

__version__ = "0.1.0"


def code_version() -> str:
    """The version of this code that lineage records, pipeline versions and run names carry:
    `<package version>+<git describe>` in a checkout (dev, CI), else the package version (an image)."""
    import subprocess
    from pathlib import Path

    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--tags"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parents[1], timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            return f"{__version__}+{out.stdout.strip()}"
    except (OSError, subprocess.TimeoutExpired):
        pass
    return __version__
