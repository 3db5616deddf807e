"""The emulator for local runs: its instance list, its part as SMN, and a clear start-up error."""

from __future__ import annotations

import base64
import socket
import subprocess
import sys

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from emulator import Emulator
from emulator.config import DEFAULT_INSTANCE_ID
from helpers import ROOT

STAGING = "5f2d9a4c8e7b4b1da3c60f9e2b7d1a84in07"


def test_instances_are_listed_with_their_status(emu: Emulator) -> None:
    emu.put_instance(STAGING, status="FROZEN")
    answer = httpx.get(f"{emu.url}/_emulator/instances", timeout=5)
    assert answer.status_code == 200
    instances = {i["id"]: i["status"] for i in answer.json()["instances"]}
    assert instances[DEFAULT_INSTANCE_ID] == "ACTIVE"
    assert instances[STAGING] == "FROZEN"
    assert len(instances) == len(emu.config.instances) + 1


def test_smn_signature_verifies_with_the_served_certificate(emu: Emulator) -> None:
    """SMN user guide, "Message Signature Verification": key\\nvalue\\n of the signed fields."""
    message = {
        "type": "Notification",
        "topic_urn": "urn:smn:eu-de:0a1b2c3d4e5f60718293a4b5c6d7e8f9:predeploy-backup",
        "message_id": "bf94b63a5dbb4a7bac20e2e6b3f6d0a1",
        "message": '{"event":"pre-deploy"}',
        "subject": "pre-deploy",
        "timestamp": "2026-11-27T10:00:00Z",
    }
    signed = httpx.post(f"{emu.url}/_emulator/smn/sign", json=message, timeout=10).json()
    assert signed["signing_cert_url"].startswith(emu.url + "/smn/")
    pem = httpx.get(signed["signing_cert_url"], timeout=5)
    assert pem.headers["content-type"] == "application/x-pem-file"
    key = x509.load_pem_x509_certificate(pem.content).public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    order = ["message", "message_id", "subject", "timestamp", "topic_urn", "type"]
    text = "".join(f"{k}\n{signed[k]}\n" for k in order).encode()
    key.verify(base64.b64decode(signed["signature"]), text, padding.PKCS1v15(), hashes.SHA256())


def test_smn_sign_refuses_a_message_without_its_fields(emu: Emulator) -> None:
    answer = httpx.post(f"{emu.url}/_emulator/smn/sign", json={"type": "Notification"}, timeout=5)
    assert answer.status_code == 400
    assert "topic_urn is required" in answer.text


def test_a_busy_port_is_a_clear_message_not_a_traceback() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "emulator", "--port", str(port)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: the port is in use" in result.stderr
    assert "--port 0" in result.stderr
    assert "Traceback" not in result.stderr
