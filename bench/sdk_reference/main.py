"""The same flow as the product, written the way a user would with the official SDK.

A benchmark reference only, never used by the product. It verifies the same Standard
Webhooks signature, parses the same JSON event and creates the backup with
``GaussDBClient.create_gauss_my_sql_backup`` (``huaweicloudsdkgaussdb``), authenticated with
AK/SK (``BasicCredentials``), the SDK's documented way. The client is built once per process,
at import, as the SDK's examples do. It runs in its own virtualenv (bench/.venv-sdk).

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
        response = _client.create_gauss_my_sql_backup(CreateGaussMySqlBackupRequest(body=backup))
    except exceptions.ClientRequestException as exc:
        return {"error_code": exc.error_code, "error_msg": exc.error_msg}, exc.status_code
    return {"job_id": response.job_id, "backup": response.backup.to_dict()}, 202
