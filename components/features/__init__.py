"""The features layer: feature tables, Feast, training sets and the online store.

  tables      the feature tables computed from validated partitions (pure pandas/DuckDB)
  build       the features build / training-set / materialize stages and their Feast plumbing
"""
