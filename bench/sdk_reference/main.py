"""The same flow as the product, written the way a user would with the official SDK.

A benchmark reference only, never used by the product. It verifies the same Standard
Webhooks signature, parses the same JSON event and authenticates with AK/SK
(``BasicCredentials``), the SDK's documented way; the client is built once per process, at
import, as the SDK's examples do. It runs in its own virtualenv (bench/.venv-sdk).

Two entry points:

``webhook``      what we do: one backup per deploy. The look-up first, as a user who wants
                 no second backup for a redelivered event would write it with the SDK: page
                 through the instance's manual backups (``show_gauss_my_sql_backup_list``,
                 100 per page, the API's maximum) until one carries the event's backup name;
                 if none does, ``create_gauss_my_sql_backup``. (The API's list has no filter
                 by name; its time filters need a time the user trusts, see the product.)
``create_only``  one call, ``create_gauss_my_sql_backup``, no look-up: the floor of the API's
                 own cost, and no protection against a second backup for a redelivery.

Environment: ``OS_ACCESS_KEY``, ``OS_SECRET_KEY``, ``OS_PROJECT_ID``, ``GAUSSDB_ENDPOINT``,
``WEBHOOK_SECRET``.
"""

from __future__ import annotations

import json
import os
from typing import Any

import flask
import functions_framework
from huaweicloudsdkcore.auth.credentials import BasicCredentials  # type: ignore[import-not-found]
from huaweicloudsdkcore.exceptions import exceptions  # type: ignore[import-not-found]
from huaweicloudsdkgaussdb.v3 import (  # type: ignore[import-not-found]
    CreateGaussMySqlBackupRequest,
    GaussDBClient,
    MysqlCreateBackupRequest,
    ShowGaussMySqlBackupListRequest,
)
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

_webhook = Webhook(os.environ["WEBHOOK_SECRET"])
_client = (
    GaussDBClient.new_builder()
    .with_credentials(
        BasicCredentials(
            os.environ["OS_ACCESS_KEY"], os.environ["OS_SECRET_KEY"], os.environ["OS_PROJECT_ID"]
        )
    )
    .with_endpoint(os.environ["GAUSSDB_ENDPOINT"])
    .build()
)


@functions_framework.http
def webhook(request: flask.Request) -> tuple[dict[str, Any], int]:
    """The look-up, then the create if the look-up found nothing."""
    return _serve(request, look_up=True)


@functions_framework.http
def create_only(request: flask.Request) -> tuple[dict[str, Any], int]:
    """The create alone."""
    return _serve(request, look_up=False)


def _serve(request: flask.Request, *, look_up: bool) -> tuple[dict[str, Any], int]:
    body = request.get_data()
    try:
        _webhook.verify(body, dict(request.headers))
    except WebhookVerificationError:
        return {"error": "unauthorized"}, 401
    try:
        event = json.loads(body)
        event_id = str(event.get("id") or request.headers["webhook-id"])
        backup = MysqlCreateBackupRequest(
            instance_id=event["instance_id"],
            name=event.get("name") or f"predeploy-{event_id}"[:64],
            description=event.get("description") or f"Pre-deploy backup, trigger {event_id}",
        )
    except (ValueError, KeyError, AttributeError):
        return {"error": "invalid_event"}, 400
    try:
        if look_up:
            found = _existing(backup.instance_id, backup.name)
            if found is not None:
                return {"backup": found.to_dict()}, 200
        response = _client.create_gauss_my_sql_backup(CreateGaussMySqlBackupRequest(body=backup))
    except exceptions.ClientRequestException as exc:
        return {"error_code": exc.error_code, "error_msg": exc.error_msg}, exc.status_code
    return {"job_id": response.job_id, "backup": response.backup.to_dict()}, 202


def _existing(instance_id: str, name: str) -> Any:
    """The instance's manual backup named ``name``, paging newest first; ``None`` if absent."""
    offset = 0
    while True:
        page = _client.show_gauss_my_sql_backup_list(
            ShowGaussMySqlBackupListRequest(
                instance_id=instance_id, backup_type="manual", offset=str(offset), limit="100"
            )
        )
        backups = page.backups or []
        for backup in backups:
            if backup.name == name:
                return backup
        offset += len(backups)
        if not backups or offset >= (page.total_count or 0):
            return None
