"""The status endpoint honours ALLOWED_INSTANCES (issue #10, item 8), on a real server.

A backup or job of an instance outside the list is ``404``, exactly like one that does not
exist, whether the poller authenticates with the bearer token or with a signature.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from emulator import Emulator
from helpers import INSTANCE, PROJECT_ID, WEBHOOK_TOKEN, server_env, sign
from tools.serve import function_server

OTHER = f"{1:032x}in07"  # the emulator's second instance, not in ALLOWED_INSTANCES


@pytest.fixture
def server(emu: Emulator) -> Iterator[str]:
    env = server_env(emu.url, WEBHOOK_TOKEN=WEBHOOK_TOKEN, ALLOWED_INSTANCES=INSTANCE)
    with function_server(env) as url:
        yield url


def backup_made_elsewhere(emu: Emulator, instance_id: str) -> dict[str, Any]:
    """A backup someone made with the API directly (not through the function)."""
    response = httpx.post(
        f"{emu.url}/v3/{PROJECT_ID}/backups/create",
        json={"instance_id": instance_id, "name": f"other-{instance_id[:6]}"},
        headers={"X-Auth-Token": emu.issue_token()},
    )
    response.raise_for_status()
    made: dict[str, Any] = response.json()
    return made


def bearer(_: bytes) -> dict[str, str]:
    return {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}


@pytest.mark.parametrize("auth", [bearer, sign], ids=["bearer", "signature"])
def test_status_of_another_instance_is_not_found(server: str, emu: Emulator, auth: Any) -> None:
    other = backup_made_elsewhere(emu, OTHER)
    mine = backup_made_elsewhere(emu, INSTANCE)
    paths = {
        f"backups/{other['backup']['id']}": 404,
        f"jobs/{other['job_id']}": 404,
        f"backups/{mine['backup']['id']}": 200,
        f"jobs/{mine['job_id']}": 200,
    }
    for path, expected in paths.items():
        response = httpx.get(server + path, headers=auth(b""), timeout=15)
        assert response.status_code == expected, (path, response.text)
        if expected == 404:
            kind, _, wanted = path.partition("/")
            assert response.json() == {
                "error": "not_found",
                "message": f"no {kind[:-1]} {wanted}",
            }
            assert OTHER not in response.text
        else:
            assert response.json()["status"] in ("RUNNING", "SUCCEEDED")
