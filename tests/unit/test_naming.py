"""Derived backup names obey the API's rules and are the same for every delivery of a trigger."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlers.naming import NAME_PREFIX, backup_name_for, description_for
from models import CreateBackupRequest, Trigger

INSTANCE = "07033b125fd94a8a96896f8bcfee6ddain07"


def trigger(trigger_id: str, source: str = "generic") -> Trigger:
    return Trigger(
        source=source, key=f"{source}:{trigger_id}", trigger_id=trigger_id, instance_id=INSTANCE
    )


def test_name_keeps_a_readable_part_of_the_id() -> None:
    name = backup_name_for(trigger("deploy-4711"))
    assert name.startswith(f"{NAME_PREFIX}deploy-4711-")
    assert len(name) == len(f"{NAME_PREFIX}deploy-4711-") + 12


def test_same_trigger_same_name() -> None:
    assert backup_name_for(trigger("deploy-4711")) == backup_name_for(trigger("deploy-4711"))


@pytest.mark.parametrize(
    ("first", "second"),
    [("deploy/1", "deploy-1"), ("a" * 40 + "x", "a" * 40 + "y"), ("release 1", "release_1")],
)
def test_ids_that_look_alike_get_different_names(first: str, second: str) -> None:
    assert backup_name_for(trigger(first)) != backup_name_for(trigger(second))


def test_the_source_is_part_of_the_identity() -> None:
    assert backup_name_for(trigger("42", "generic")) != backup_name_for(trigger("42", "github"))


def test_body_hash_ids_get_a_hash_only_name() -> None:
    name = backup_name_for(trigger("sha256:" + "ab" * 32))
    assert name.startswith(NAME_PREFIX)
    assert len(name) == len(NAME_PREFIX) + 12


@given(st.text(min_size=1, max_size=300))
def test_any_trigger_id_gives_a_valid_request(trigger_id: str) -> None:
    derived = trigger(trigger_id)
    request = CreateBackupRequest(
        instance_id=INSTANCE,
        name=backup_name_for(derived),
        description=description_for(derived),
    )
    assert request.name.startswith(NAME_PREFIX)
