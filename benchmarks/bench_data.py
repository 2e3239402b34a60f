"""Throughput of ingest and validate over the full 2013 year (336,776 flights, 26,115 weather rows).

Baselines, measured in the same run on the same data:
- ingest: read the packaged CSV and write it as one parquet file (no typing, no partitions).
- validate: the very same suite (components.data.expectations.checks) evaluated directly in pandas,
  partition by partition, on the same raw partitions and derived columns; it must reach the same
  verdicts as Great Expectations, or the benchmark fails.
"""

from __future__ import annotations

import io
import re
import time

import pandas as pd

from benchmarks.harness import Context, Result, peak_rss_mb, timed
from components.contracts import layout, schema
from components.contracts.errors import BadInput
from components.contracts.stages import IngestParams, ValidateParams
from components.core.store import open_store
from components.data import expectations

AREA = "data"
TYPE_OK = {
    "int": lambda s: pd.api.types.is_integer_dtype(s) and not pd.api.types.is_bool_dtype(s),
    "float": lambda s: pd.api.types.is_float_dtype(s) or pd.api.types.is_integer_dtype(s),
    "string": lambda s: s.dropna().map(lambda v: isinstance(v, str)).all(),
}


def run(ctx: Context) -> list[Result]:
    from components.data.ingest import ingest
    from components.data.sources import nycflights13
    from components.data.validate import suites, validate

    first, last = (d.isoformat() for d in schema.NYCFLIGHTS13_DAYS)  # the whole of the data
    start, end = (first, "2013-01-31") if ctx.quick else (first, last)
    store = open_store()
    days = schema.day_range(start, end)

    with timed() as t_base_ingest:
        flights = nycflights13.load("flights")
        flights.to_parquet(io.BytesIO(), index=False, compression="zstd")
    with timed() as t_ingest:
        ingested = ingest(IngestParams(start=start, end=end), store)
    n_flights = ingested["tables"]["flights"]["rows"]
    n_rows = sum(ingested["tables"][t]["rows"] for t in schema.PARTITIONED)

    with timed() as t_import:
        suites()  # import GX and build the context once, as a long-lived worker would
    refused = []
    cpu0 = time.process_time()
    with timed() as t_validate:
        try:
            validate(ValidateParams(start=start, end=end), store)
        except BadInput as exc:
            refused = sorted(set(re.findall(r"(flights|weather) (\d{4}-\d\d-\d\d) \(", str(exc))))
    cpu_gx, cpu0 = time.process_time() - cpu0, time.process_time()
    with timed() as t_pandas:
        pandas_refused = pandas_validate(store, days)
    cpu_pandas = time.process_time() - cpu0
    if sorted(pandas_refused) != refused:
        raise AssertionError(f"GX refused {refused}, the pandas baseline {pandas_refused}: not the same checks")

    notes = (f"{len(days)} days; refused by both: {', '.join(' '.join(r) for r in refused) or 'none'}"
             " (the source has no weather after 2013-12-30 18:00 local)")
    return [
        Result(AREA, f"ingest rows/s (flights, {len(days)} days)", n_flights / t_ingest.seconds, "rows/s",
               baseline_name="read CSV + write one parquet", baseline_value=len(flights) / t_base_ingest.seconds,
               notes=f"ingest {t_ingest.seconds:.1f} s for {n_flights} flights + weather, planes, airlines",
               peak_rss_mb=peak_rss_mb()),
        Result(AREA, f"validate rows/s (GX, flights+weather, {len(days)} days)", n_rows / t_validate.seconds, "rows/s",
               baseline_name="same suite in pandas", baseline_value=n_rows / t_pandas.seconds,
               notes=f"GX {t_validate.seconds:.1f} s ({cpu_gx:.1f} s CPU) vs pandas {t_pandas.seconds:.1f} s "
               f"({cpu_pandas:.1f} s CPU); {notes}",
               peak_rss_mb=peak_rss_mb()),
        Result(AREA, "GX import + context + suites", t_import.seconds, "s", higher_is_better=False,
               notes="paid once per process"),
    ]


# -- the baseline: the suite's checks, written in pandas -----------------------------------------------
def pandas_validate(store, days) -> list[tuple[str, str]]:
    from components.data.validate import known_carriers

    carriers = known_carriers(store)
    bounds = {"flights": (ValidateParams.min_flight_rows, ValidateParams.max_flight_rows),
              "weather": (ValidateParams.min_weather_rows, len(schema.ORIGINS) * 25)}
    refused = []
    for table in schema.PARTITIONED:
        checks = expectations.checks(table)
        for day in days:
            df = pd.read_parquet(io.BytesIO(store.read_bytes(layout.raw_key(table, day))))
            params = expectations.parameters(table, min_rows=bounds[table][0], max_rows=bounds[table][1],
                                             carriers=carriers)
            prepared = expectations.prepare_batch(table, df, day)
            if not all(passes(c, prepared, params) for c in checks):
                refused.append((table, day.isoformat()))
    return refused


def passes(check: expectations.Check, df: pd.DataFrame, params: dict) -> bool:
    kw = {k: params[v["$PARAMETER"]] if isinstance(v, dict) and "$PARAMETER" in v else v
          for k, v in check.kwargs.items()}
    name = check.expectation
    if name == "ExpectTableRowCountToBeBetween":
        return kw["min_value"] <= len(df) <= kw["max_value"]
    if name == "ExpectCompoundColumnsToBeUnique":
        return not df.duplicated(kw["column_list"], keep=False).any()
    if name == "ExpectColumnPairValuesToBeEqual":
        a, b = df[kw["column_A"]], df[kw["column_B"]]
        both = a.notna() & b.notna()
        return bool((a[both] == b[both]).all())
    col = kw["column"]
    if name == "ExpectColumnToExist":
        return col in df.columns
    if col not in df.columns:
        return False
    s = df[col]
    if name == "ExpectColumnValuesToBeInTypeList":
        kind = next(k for k, v in expectations.TYPE_LISTS.items() if v == kw["type_list"])
        return bool(TYPE_OK[kind](s))
    if name == "ExpectColumnValuesToNotBeNull":
        return not s.isna().any()
    values = s.dropna()
    if name == "ExpectColumnValuesToBeBetween":
        return bool(((values >= kw["min_value"]) & (values <= kw["max_value"])).all())
    if name == "ExpectColumnValuesToBeInSet":
        return bool(values.isin(kw["value_set"]).all())
    if name == "ExpectColumnValuesToBeUnique":
        return not values.duplicated().any()
    if name == "ExpectColumnValuesToMatchRegex":
        return bool(values.astype(str).str.match(kw["regex"]).all())
    raise NotImplementedError(name)

