"""The features layer: feature tables, Feast, training sets and the online store.

  tables            the feature tables computed from validated partitions (pure pandas/DuckDB)
  validated         reading the validated partitions
  build             the features build stage: tables written, then `feast apply`
  feast_repo        feature_repo/ for the stages: definitions, feature_store.yaml, FeatureStore, apply
  atomic_registry   Feast's local file registry, written by rename (readers never see half a file)
  store_lease       a renewed lease by conditional writes: Feast registry writes and materializations serialized
  redis_auth        the Redis online store's AUTH password, and a refused one told apart
  duckdb_httpfs     DuckDB's httpfs extension and S3 secret for the aws profile's offline store
  retrieval         model features for flights, offline (point-in-time) and online
  day_so_far        outcome events (each with the moment it became known) and the day-so-far rows (pure)
  push              the push-outcomes stage: a day's events replayed through Feast's push API, offline log
  push_log          the pushed views' offline logs (the push sources' batch sources)
  training_set      the training-set stage
  materialize_plan  what a materialize run loads, planned without I/O
  materialize       the materialize stage, executing that plan
"""
