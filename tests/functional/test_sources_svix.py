"""Standard Webhooks senders built on Svix: ``svix-id``/``svix-timestamp``/``svix-signature``.

Signed by the official ``svix`` library (PyPI ``svix``, ``svix.webhooks.Webhook.sign``), the
way a Svix-based sender signs; its ``Webhook.verify`` reads these names, and so does ours.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient
from svix.webhooks import Webhook as SvixWebhook

from emulator import Emulator
from helpers import WEBHOOK_SECRET, creates, event


def svix_headers(
    body: bytes, secret: str = WEBHOOK_SECRET, when: datetime | None = None
) -> dict[str, str]:
    moment = when or datetime.now(tz=UTC)
    return {
        "Content-Type": "application/json",
        "svix-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "svix-timestamp": str(int(moment.timestamp())),
        "svix-signature": SvixWebhook(secret).sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek", moment, body.decode()
        ),
    }


def test_svix_signed_event_backs_up(client: FlaskClient, emu: Emulator) -> None:
    body = event()
    headers = svix_headers(body)
    SvixWebhook(WEBHOOK_SECRET).verify(body, {k: v for k, v in headers.items()})  # as svix does
    response = client.post("/", data=body, headers=headers)
    assert response.status_code == 202, response.get_json()
    assert len(creates(emu)) == 1


def test_svix_id_is_the_delivery_id_when_the_event_has_none(
    client: FlaskClient, emu: Emulator
) -> None:
    body = event(id=None)
    response = client.post("/", data=body, headers=svix_headers(body))
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["trigger_id"] == "msg_p5jXN8AQM9LWM0D4loKWxJek"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"svix-signature": "v1,AAAA"}, "does not match"),
        (
            {
                "svix-timestamp": str(
                    int((datetime.now(tz=UTC) - timedelta(minutes=10)).timestamp())
                )
            },
            "more than 5 minutes old",
        ),
    ],
)
def test_svix_headers_are_verified(
    client: FlaskClient, emu: Emulator, change: dict[str, str], message: str
) -> None:
    body = event()
    response = client.post("/", data=body, headers=svix_headers(body) | change)
    assert response.status_code == 401
    assert message in response.get_json()["message"]
    assert emu.requests() == []


def test_svix_names_win_over_standard_ones_as_in_the_library(
    client: FlaskClient, emu: Emulator
) -> None:
    """svix's Webhook.verify takes svix-* first; a forged webhook-* twin changes nothing."""
    body = event()
    headers = svix_headers(body) | {"webhook-signature": "v1,forged", "webhook-id": "other"}
    response = client.post("/", data=body, headers=headers)
    assert response.status_code == 202, response.get_json()
    forged = svix_headers(body) | {"svix-signature": "v1,forged"}
    forged["webhook-signature"] = svix_headers(body)["svix-signature"]
    response = client.post("/", data=body, headers=forged)
    assert response.status_code == 401
