import pytest

from components.settings import SettingsError, load_settings


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
