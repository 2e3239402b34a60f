"""Policy names on the command line -> specs and namespaces, and the errors a wrong name gets."""

from __future__ import annotations

import pytest

from components.backtest.policies import parse_policies, parse_policy


def test_names_give_their_kind_period_and_a_namespace_of_their_own():
    specs = parse_policies("static,scheduled,scheduled:30,drift,scheduled:30+drift,scheduled+drift", 5)
    assert [(s.kind, s.every, s.namespace) for s in specs] == [
        ("static", None, "static"), ("scheduled", 5, "scheduled"), ("scheduled", 30, "scheduled-30d"),
        ("drift", None, "drift"), ("scheduled+drift", 30, "scheduled-30d-drift"),
        ("scheduled+drift", 5, "scheduled-5d-drift")]
    # a trigger's namespace is its settings' digest: two names for the same settings share it
    assert parse_policy("trigger", 5).namespace == parse_policy("trigger:cooldown_days=14", 5).namespace
    assert parse_policy("trigger", 5).namespace != parse_policy("trigger:cooldown_days=7", 5).namespace


@pytest.mark.parametrize("text, message", [
    ("weekly", "must be one of static, scheduled, scheduled:N, drift, scheduled:N+drift"),
    ("drift+scheduled", "must be one of"),
    ("scheduled:0", "scheduled:N needs a whole number of days N >= 1"),
    ("scheduled:x+drift", "scheduled:N needs a whole number of days N >= 1"),
    ("drift:3", "drift takes no argument"),
    ("trigger:cooldown_days", "is not setting=value"),
])
def test_a_wrong_name_says_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message.replace("+", r"\+")):
        parse_policy(text, 5)


def test_the_same_policy_twice_or_none_is_refused():
    with pytest.raises(ValueError, match="names the same policy twice"):
        parse_policies("scheduled:30+drift,scheduled+drift", 30)
    with pytest.raises(ValueError, match="--policies is empty"):
        parse_policies(" , ", 30)
