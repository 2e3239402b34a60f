import pytest

from components.core.settings import SettingsError, load_settings


def test_default_is_local_under_flightdeck_home(tmp_path):
    s = load_settings({"FLIGHTDECK_HOME": str(tmp_path)})
    assert s.profile == "local"
    assert s.artifact_root == (tmp_path / "artifacts").as_uri()


def test_aws_profile_needs_a_bucket():
    with pytest.raises(SettingsError, match="FLIGHTDECK_S3_BUCKET"):
        load_settings({"FLIGHTDECK_PROFILE": "aws"})


def test_config_file_then_environment_override(tmp_path):
    cfg = tmp_path / "fd.toml"
    cfg.write_text('[flightdeck]\nprofile = "aws"\ns3_bucket = "from-file"\nlead_time_hours = 3\n')
    s = load_settings({"FLIGHTDECK_CONFIG": str(cfg), "FLIGHTDECK_S3_BUCKET": "from-env"})
    assert (s.profile, s.s3_bucket, s.lead_time_hours) == ("aws", "from-env", 3.0)
    assert s.artifact_root == "s3://from-env"


@pytest.mark.parametrize(
    "env, message",
    [
        ({"FLIGHTDECK_PROFILE": "gcp"}, "not one of local, aws"),
        ({"FLIGHTDECK_LEAD_TIME_HOURS": "soon"}, "not a number"),
        ({"FLIGHTDECK_CONFIG": "/nonexistent.toml"}, "not a file"),
    ],
)
def test_bad_settings_name_the_problem(env, message):
    with pytest.raises(SettingsError, match=message):
        load_settings(env)


def test_default_home_is_dot_flightdeck_in_the_working_directory(tmp_path):
    """No FLIGHTDECK_* at all: artifacts and Feast's files go under ./.flightdeck of the working directory
    (made absolute once, so Feast's registry and online store sit beside the artifacts)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import json; from components.core.settings import load_settings; from components.core.store import open_store;"
        "from components.features import feast_repo as F; s = load_settings(); st = open_store(); st.write_bytes('probe', b'1');"
        "fs = F.feature_store(); print(json.dumps({'home': s.home, 'root': st.uri(), "
        "'registry': fs.config.registry.path, 'online': fs.config.online_store.path}))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLIGHTDECK_", "FEAST_"))}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    home = (tmp_path / ".flightdeck").resolve()
    assert got["home"] == "./.flightdeck"
    assert got["root"] == (home / "artifacts").as_uri() and (home / "artifacts" / "probe").read_bytes() == b"1"
    assert got["registry"] == str(home / "feast" / "registry.db")
    assert got["online"] == str(home / "feast" / "online_store.db") and (home / "feast").is_dir()


def test_landing_defaults_to_home_landing_locally_and_the_data_bucket_on_aws(tmp_path):
    assert load_settings({"FLIGHTDECK_HOME": str(tmp_path)}).landing_locations == (str(tmp_path.resolve() / "landing"),)
    aws = {"FLIGHTDECK_PROFILE": "aws", "FLIGHTDECK_S3_BUCKET": "fd-artifacts"}
    assert load_settings(aws).landing_locations == ("s3://fd-artifacts/landing/",)
    assert load_settings({**aws, "FLIGHTDECK_S3_DATA_BUCKET": "fd-data"}).landing_locations == ("s3://fd-data/landing/",)
    # Several locations, normalized: local ones resolved, s3 prefixes ending in one slash.
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    s = load_settings({"FLIGHTDECK_HOME": str(tmp_path / "h"),
                       "FLIGHTDECK_LANDING": f" {tmp_path}/link/../real/x , s3://drops//in-a/ "})
    assert s.landing_locations == (str((tmp_path / "real" / "x").resolve()), "s3://drops/in-a/")
    assert s.quarantine_max_mb == 64.0


@pytest.mark.parametrize(
    "landing, message",
    [
        ("{tmp}", "holds FLIGHTDECK_HOME"),  # the home's Airflow DB, Feast stores and artifacts
        ("/", "holds FLIGHTDECK_HOME"),
        ("s3://drops/a/../b/", "no . or .. in the prefix"),
        ("s3:///landing/", "not an s3://bucket/prefix/ location"),
        ("https://example.com/drops/", "a local folder or an s3:// prefix"),
    ],
)
def test_bad_landing_locations_are_refused(tmp_path, landing, message):
    with pytest.raises(SettingsError, match=message):
        load_settings({"FLIGHTDECK_HOME": str(tmp_path / "home"), "FLIGHTDECK_LANDING": landing.format(tmp=tmp_path)})


def test_landing_at_the_root_of_an_own_bucket_is_refused():
    with pytest.raises(SettingsError, match="root of one of flightdeck's own buckets"):
        load_settings({"FLIGHTDECK_PROFILE": "aws", "FLIGHTDECK_S3_BUCKET": "fd-a", "FLIGHTDECK_S3_DATA_BUCKET": "fd-d",
                       "FLIGHTDECK_LANDING": "s3://fd-d"})
    with pytest.raises(SettingsError, match="FLIGHTDECK_QUARANTINE_MAX_MB"):
        load_settings({"FLIGHTDECK_QUARANTINE_MAX_MB": "-1"})
