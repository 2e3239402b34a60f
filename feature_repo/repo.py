"""Module-level objects for the `feast` CLI, e.g.

    cd feature_repo && FLIGHTDECK_HOME=/abs/path/to/home feast -f profiles/local/feature_store.yaml plan
    cd feature_repo && FLIGHTDECK_HOME=... feast -f profiles/local/feature_store.yaml apply
    cd feature_repo && FLIGHTDECK_HOME=... feast -f profiles/local/feature_store.yaml feature-views list

The stages do not go through this file: components.features.feast_repo applies the same objects
programmatically (`flightdeck features build`), and reads the same feature_store.yaml. Needs the
flightdeck package importable and the profile's settings as environment variables, because Feast
expands the file's ${...} with the environment: FLIGHTDECK_HOME on the local profile (absolute, or
relative to feature_repo/), FLIGHTDECK_PROFILE=aws with FLIGHTDECK_S3_BUCKET, FLIGHTDECK_REDIS_URL
(and FLIGHTDECK_S3_ENDPOINT_URL for an S3-compatible server) on the aws profile. A settings file
(FLIGHTDECK_CONFIG) is not enough here: Feast reads only the environment.
"""

from components.features.feast_repo import feast_cli_environment, repo_definitions

feast_cli_environment()  # refuses an environment the yaml cannot be expanded with; makes the local dirs
_defs = repo_definitions()
# Every object of definitions.py as a module-level name (the feast CLI collects the Feast objects it finds
# among a module's names), by its own name: a view added to definitions.py reaches the CLI with no edit here.
_objects = {obj.name: obj for obj in _defs.objects()}
if len(_objects) != len(_defs.objects()) or any(not n.isidentifier() or n in globals() for n in _objects):
    raise RuntimeError(f"feature_repo/repo.py: the names of definitions.py's objects {sorted(_objects)} must be "
                       "distinct Python identifiers")
globals().update(_objects)
