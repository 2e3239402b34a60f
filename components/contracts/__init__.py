"""Contracts: what the layers agree on, with no behaviour of their own (the bottom layer).

  schema      the raw tables' columns and types, dates and the flight key
  signature   the model signature: keys, categorical and numeric features, label
  layout      every artifact-store key and prefix (raw/, validated/, features/, runs/, models/...)
  spec        StageSpec: a stage's typed parameters, artifacts and entry function
  stages      every stage's spec (cheap to import: the CLI, DAGs and KFP wire stages from here)
  errors      StageFailed / BadInput: how a stage stops a run with a message for a person
"""
