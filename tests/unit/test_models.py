"""The API's rules, each defined once in models.py, at their boundaries."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from pydantic import ValidationError

from models import (
    Backup,
    BackupListItem,
    BackupStatus,
    CreateBackupRequest,
    CreateBackupResult,
)

INSTANCE = "07033b125fd94a8a96896f8bcfee6ddain07"


def request(**fields: object) -> CreateBackupRequest:
    values: dict[str, object] = {"instance_id": INSTANCE, "name": "backup-1"}
    values.update(fields)
    return CreateBackupRequest.model_validate(values)


@pytest.mark.parametrize("name", ["abcd", "a" * 64, "Backup_1-x", "Z123", "backup-1", "a-_-"])
def test_valid_names(name: str) -> None:
    assert request(name=name).name == name


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("abc", "4 to 64 characters long (got 3)"),
        ("a" * 65, "4 to 64 characters long (got 65)"),
        ("", "4 to 64"),
        ("1abc", "must start with a letter"),
        ("-abc", "must start with a letter"),
        ("_abc", "must start with a letter"),
        ("ébcd", "must start with a letter"),
        ("ab cd", "only letters, digits"),
        ("ab.cd", "only letters, digits"),
        ("abcé", "only letters, digits"),
        ("abc\n", "only letters, digits"),
    ],
)
def test_invalid_names(name: str, rule: str) -> None:
    with pytest.raises(ValidationError) as caught:
        request(name=name)
    (error,) = caught.value.errors()
    assert error["loc"] == ("name",)
    assert rule in error["msg"]


@pytest.mark.parametrize("description", ["", "d" * 256, "Manual backup (v1.2; ok) #7 / 50% + x"])
def test_valid_descriptions(description: str) -> None:
    assert request(description=description).description == description


@pytest.mark.parametrize("char", list(">!<\"&'=\r\n"))
def test_each_forbidden_description_character(char: str) -> None:
    with pytest.raises(ValidationError) as caught:
        request(description=f"before{char}after")
    (error,) = caught.value.errors()
    assert error["loc"] == ("description",)
    assert "must not contain" in error["msg"]
    assert repr(char) in error["msg"]


def test_description_over_256_characters() -> None:
    with pytest.raises(ValidationError) as caught:
        request(description="d" * 257)
    assert "at most 256 characters long (got 257)" in caught.value.errors()[0]["msg"]


@pytest.mark.parametrize(
    "instance_id",
    [
        "07033b125fd94a8a96896f8bcfee6ddain01",
        "00000000000000000000000000000000in07",
    ],
)
def test_valid_instance_ids(instance_id: str) -> None:
    assert request(instance_id=instance_id).instance_id == instance_id


@pytest.mark.parametrize(
    "instance_id",
    [
        "07033b125fd94a8a96896f8bcfee6dda",  # no suffix
        "07033b125fd94a8a96896f8bcfee6ddain7",  # one digit
        "07033B125FD94A8A96896F8BCFEE6DDAIN07",  # upper case
        "07033b12-5fd9-4a8a-9689-6f8bcfee6dda",  # a dashed UUID
        "07033b125fd94a8a96896f8bcfee6ddgin07",  # not hex
        "07033b125fd94a8a96896f8bcfee6ddain07\n",
        "",
    ],
)
def test_invalid_instance_ids(instance_id: str) -> None:
    with pytest.raises(ValidationError) as caught:
        request(instance_id=instance_id)
    (error,) = caught.value.errors()
    assert error["loc"] == ("instance_id",)
    assert "followed by 'in' and 2 digits" in error["msg"]


def test_request_refuses_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        request(instance="x")


def test_description_is_left_out_when_unset() -> None:
    assert request().model_dump(exclude_none=True) == {"instance_id": INSTANCE, "name": "backup-1"}


PAGE_EXAMPLE = {
    "backup": {
        "id": "2f4ddb93-b901-4b08-93d8-1d2e472f30fe",
        "name": "backup-1",
        "description": "Manual backup",
        "begin_time": "2020-07-07T01:17:05+0800",
        "status": "BUILDING",
        "type": "manual",
        "instance_id": INSTANCE,
    },
    "job_id": "e0fbbfc8-1ac4-4721-b9e9-7dd685c5bdd7",
}


def test_create_result_parses_the_documented_example() -> None:
    result = CreateBackupResult.model_validate(PAGE_EXAMPLE)
    assert result.job_id == "e0fbbfc8-1ac4-4721-b9e9-7dd685c5bdd7"
    assert result.backup.status is BackupStatus.BUILDING
    assert result.backup.begin_time == datetime.fromisoformat("2020-07-07T01:17:05+08:00")
    assert result.backup.begin_time.utcoffset() == timedelta(hours=8)
    # written back in the API's own format
    assert result.model_dump(mode="json") == PAGE_EXAMPLE


@pytest.mark.parametrize("status", ["BUILDING", "COMPLETED", "FAILED", "AVAILABLE"])
def test_every_documented_backup_status(status: str) -> None:
    backup = Backup.model_validate({**PAGE_EXAMPLE["backup"], "status": status})  # type: ignore[dict-item]
    assert backup.status == status


def test_unknown_backup_status_is_refused() -> None:
    with pytest.raises(ValidationError):
        Backup.model_validate({**PAGE_EXAMPLE["backup"], "status": "DELETING"})  # type: ignore[dict-item]


@pytest.mark.parametrize("begin_time", ["2020-07-07 01:17:05", "yesterday", "2020-07-07T01:17:05"])
def test_malformed_begin_time_is_refused(begin_time: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Backup.model_validate({**PAGE_EXAMPLE["backup"], "begin_time": begin_time})  # type: ignore[dict-item]
    assert "2020-07-07T01:17:05+0800" in caught.value.errors()[0]["msg"]


def test_list_item_tolerates_empty_end_time_and_extra_fields() -> None:
    item = BackupListItem.model_validate(
        {
            **PAGE_EXAMPLE["backup"],  # type: ignore[dict-item]
            "end_time": "",
            "take_up_time": 0,
            "size": 12.5,
            "datastore": {"type": "gaussdb-mysql", "version": "8.0"},
            "something_new": True,
        }
    )
    assert item.end_time is None
    assert item.datastore is not None and item.datastore.type == "gaussdb-mysql"
