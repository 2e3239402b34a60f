"""Real-data fixtures for the monitoring tests: the 2013 flights as scoring frames, a model fit on
January-March, and helpers that publish what batch prediction and validation publish."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.monitoring import calibration as mb

REPO_ROOT = Path(__file__).resolve().parents[2]
JAN_MAR = ("2013-01-01", "2013-03-31")


@pytest.fixture(scope="session")
def frame():
    return mb.year_frame()


@pytest.fixture(scope="session")
def jan_mar_scorer(frame):
    return mb.Scorer(mb.days(frame, *JAN_MAR))


@pytest.fixture
def jan_mar_model(local_store, frame, jan_mar_scorer):
    """Registry version 1: reference = a Jan-Mar sample with the model's predictions, holdout AUC 0.70."""
    reference = mb.reference_sample(frame, *JAN_MAR, n=5000)
    return mb.register_reference_model(local_store, reference, jan_mar_scorer, JAN_MAR, holdout_auc=0.70)
