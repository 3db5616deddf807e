"""Callbacks: the URL policy, the Standard Webhooks signature, and every delivery outcome."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread

import pytest
from standardwebhooks import Webhook

from clients.callback import CallbackSender
from emulator.receiver import CallbackReceiver
from helpers import CALLBACK_SECRET, PUBLIC_IP, WEBHOOK_SECRET, FakeDNS

PAYLOAD = {"type": "backup.started", "job_id": "e0fbbfc8-1ac4-4721-b9e9-7dd685c5bdd7"}


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    with CallbackReceiver(CALLBACK_SECRET) as receiver:
        yield receiver


@pytest.fixture
def sender() -> Iterator[CallbackSender]:
    sender = CallbackSender(
        secret=CALLBACK_SECRET,
        allowed_hosts=["127.0.0.1"],
        timeout=1.0,
        resolver=FakeDNS({"ci.example.com": PUBLIC_IP}),
    )
    yield sender
    sender.close()


@pytest.mark.parametrize(
    "url",
    ["https://ci.example.com/hook", "https://ci.example.com:8443/a?b=c", "http://127.0.0.1:1/x"],
)
def test_allowed_urls(sender: CallbackSender, url: str) -> None:
    assert sender.refusal(url) is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://ci.example.com/hook", "must use https"),
        ("ftp://ci.example.com/hook", "absolute https"),
        ("/relative/path", "absolute https"),
        ("https:///no-host", "absolute https"),
        ("https://user:secret@ci.example.com/", "user information"),
        ("https://token@ci.example.com/", "user information"),
        ("https://ci.example.com:99999/", "valid absolute URL"),
        ("http://127.0.0.2/x", "must use https"),
    ],
)
def test_refused_urls(sender: CallbackSender, url: str, reason: str) -> None:
    refusal = sender.refusal(url)
    assert refusal is not None and reason in refusal


def test_callback_is_signed_per_standard_webhooks(
    sender: CallbackSender, receiver: CallbackReceiver
) -> None:
    delivery = sender.send(receiver.url + "/hook", message_id="msg_1", payload=PAYLOAD)

    assert delivery.delivered and delivery.status == 200
    (callback,) = receiver.received
    assert callback.headers["content-type"] == "application/json"
    assert callback.headers["webhook-id"] == "msg_1"
    assert Webhook(CALLBACK_SECRET).verify(callback.body.decode(), callback.headers) == PAYLOAD
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(WEBHOOK_SECRET).verify(callback.body.decode(), callback.headers)


def test_same_message_id_on_every_send(sender: CallbackSender, receiver: CallbackReceiver) -> None:
    for _ in range(2):
        sender.send(receiver.url, message_id="msg_same", payload=PAYLOAD)
    assert [c.headers["webhook-id"] for c in receiver.received] == ["msg_same", "msg_same"]


def test_receiver_error_is_reported(sender: CallbackSender, receiver: CallbackReceiver) -> None:
    receiver.status = 503
    delivery = sender.send(receiver.url, message_id="msg_1", payload=PAYLOAD)
    assert not delivery.delivered
    assert delivery.status == 503
    assert delivery.error == "the callback receiver answered 503"


def test_unreachable_receiver_is_reported(sender: CallbackSender) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    delivery = sender.send(f"http://127.0.0.1:{port}/", message_id="msg_1", payload=PAYLOAD)
    assert not delivery.delivered and delivery.status is None
    assert delivery.error is not None and "unreachable" in delivery.error


def test_slow_receiver_times_out(sender: CallbackSender, receiver: CallbackReceiver) -> None:
    receiver.delay_seconds = 1.5
    delivery = sender.send(receiver.url, message_id="msg_1", payload=PAYLOAD)
    assert not delivery.delivered
    assert delivery.error == "the callback receiver timed out"


class _Redirect(BaseHTTPRequestHandler):
    hits = 0

    def do_POST(self) -> None:
        type(self).hits += 1
        self.send_response(307)
        self.send_header("Location", "http://169.254.169.254/latest/meta-data")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


def test_redirects_are_not_followed(sender: CallbackSender) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirect)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        delivery = sender.send(f"http://127.0.0.1:{port}/", message_id="m", payload=PAYLOAD)
    finally:
        server.shutdown()
        server.server_close()
    assert not delivery.delivered and delivery.status == 307
    assert _Redirect.hits == 1


def test_without_secret_nothing_is_sent(receiver: CallbackReceiver) -> None:
    unsigned = CallbackSender(secret=None, allowed_hosts=["127.0.0.1"])
    assert not unsigned.can_sign
    delivery = unsigned.send(receiver.url, message_id="msg_1", payload=PAYLOAD)
    assert not delivery.delivered and delivery.error == "CALLBACK_SECRET is not set"
    assert receiver.received == []
