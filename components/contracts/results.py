"""The typed result of every stage entry function: what the CLI prints as JSON, what an Airflow task
pushes to XCom and what a KFP component reads, each by name.

TypedDicts, so a result stays a plain JSON-able dict on the wire (XCom, the pod's result file)
while its keys are declared and checked (mypy, and tests/core/test_results.py reads them back).
Each stage's section is kept by its layer.
"""

from __future__ import annotations

from typing import Any, TypedDict

# -- data: ingest, validate -----------------------------------------------------------------------
# (the data layer's results)


# -- features: build, training set, materialize ------------------------------------------------------
# (the features layer's results)


# -- model: train, evaluate, register ----------------------------------------------------------------
# (the model layer's results)


# -- serving: deploy, predict batch, predict online ----------------------------------------------------
# (the serving layer's results)


# -- monitoring: monitor ---------------------------------------------------------------------------------
# (the monitoring layer's results)


__all__ = ["Any", "TypedDict"]
