"""The SSRF guard: every refused address class (as literals and behind names), rebinding,
pinned connections that keep Host, SNI and certificate checks, redirects, proxies, deadlines,
and the 400 before any backup when an event names a refused callback URL."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import httpx
import pytest
import trustme
from flask.testing import FlaskClient

from clients.callback import CallbackSender
from clients.ssrf import AddressRefusedError, SsrfGuard, address_refusal
from emulator import Emulator
from emulator.receiver import CallbackReceiver
from helpers import CALLBACK_SECRET, PUBLIC_IP, FakeDNS, SetEnv, event, make_client, sign

PAYLOAD = {"type": "backup.started", "job_id": "e0fbbfc8-1ac4-4721-b9e9-7dd685c5bdd7"}

REFUSED = [
    ("127.0.0.1", "loopback"),
    ("127.255.0.9", "loopback"),
    ("::1", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.254", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"),  # the metadata service (OpenStack, OTC, AWS, GCP)
    ("169.254.0.1", "link-local"),
    ("fe80::1", "link-local"),
    ("100.64.0.1", "shared (100.64/10)"),
    ("100.127.255.254", "shared (100.64/10)"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("ff02::1", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("0.0.0.0", "unspecified"),  # noqa: S104 - a refused target, not a bind address
    ("::", "unspecified"),
    ("::ffff:127.0.0.1", "IPv4-mapped"),
    ("::ffff:8.8.8.8", "IPv4-mapped"),
    ("fc00::1", "unique-local"),
    ("fd00:ec2::254", "unique-local"),  # the AWS IPv6 metadata service
    ("fec0::1", "site-local"),
    ("2002:7f00:1::1", "IPv6 tunnel (6to4/Teredo)"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "IPv6 tunnel (6to4/Teredo)"),
    ("64:ff9b::a00:1", "private (via NAT64)"),
    ("64:ff9b::a9fe:a9fe", "link-local (via NAT64)"),
    ("192.0.2.1", "special-purpose (not public)"),
    ("198.18.0.1", "special-purpose (not public)"),
    ("192.0.0.1", "special-purpose (not public)"),
]
PUBLIC = ["8.8.8.8", PUBLIC_IP, "2606:4700::1111", "64:ff9b::808:808"]


@pytest.mark.parametrize(("address", "reason"), REFUSED)
def test_address_classes_are_refused(address: str, reason: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) is None


def literal(address: str) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"https://{host}/latest/meta-data/"


@pytest.mark.parametrize(("address", "reason"), REFUSED)
def test_urls_with_refused_literals(address: str, reason: str) -> None:
    refusal = SsrfGuard(resolver=FakeDNS({})).refusal(literal(address))
    assert refusal == (
        f"must not point to a {reason} address (allowed only for hosts in CALLBACK_ALLOWED_HOSTS)"
    )


@pytest.mark.parametrize(("address", "reason"), REFUSED)
def test_names_that_resolve_to_refused_addresses(address: str, reason: str) -> None:
    dns = FakeDNS({"hooks.example.com": address})
    refusal = SsrfGuard(resolver=dns).refusal("https://hooks.example.com/deploy")
    assert refusal is not None and f"must not point to a {reason} address" in refusal
    assert address not in refusal  # what a name resolves to inside our network stays ours
    assert dns.lookups == ["hooks.example.com"]


@pytest.mark.parametrize(
    "url",
    [
        "https://2130706433/",  # 127.0.0.1 as one decimal number
        "https://0x7f.0.0.1/",
        "https://127.1/",
        "https://017700000001/",  # octal
        "https://localhost/",
    ],
)
def test_unusual_spellings_of_loopback_are_resolved_and_refused(url: str) -> None:
    refusal = SsrfGuard().refusal(url)  # the system's resolver: these never leave the machine
    assert refusal is not None and "loopback" in refusal


def test_fully_qualified_localhost_is_refused_too() -> None:
    assert SsrfGuard().refusal("https://localhost./") is not None  # loopback, or unresolvable


def test_one_refused_address_among_several_refuses_the_name() -> None:
    dns = FakeDNS({"mixed.example.com": [[PUBLIC_IP, "10.0.0.7"]]})
    refusal = SsrfGuard(resolver=dns).refusal("https://mixed.example.com/")
    assert refusal is not None and "private" in refusal


def test_public_name_passes_and_unresolvable_name_is_refused() -> None:
    guard = SsrfGuard(resolver=FakeDNS({"ci.example.com": PUBLIC_IP}))
    assert guard.refusal("https://ci.example.com/hook") is None
    assert guard.refusal("https://CI.Example.COM./hook") is None
    assert guard.refusal("https://nowhere.example.com/") == (
        "must name a host that resolves (the name did not resolve)"
    )


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://ci.example.com/hook", "must use https"),
        ("ftp://ci.example.com/hook", "absolute https"),
        ("file:///etc/passwd", "absolute https"),
        ("gopher://127.0.0.1:6379/_INFO", "absolute https"),
        ("https://user:pw@ci.example.com/", "user information"),
        ("https://ci.example.com:0/", "port is out of range"),
        ("https://ci.example.com:65536/", "port is out of range"),
        ("https://[::1/", "valid absolute URL"),
        ("//ci.example.com/hook", "absolute https"),
    ],
)
def test_static_rules(url: str, reason: str) -> None:
    refusal = SsrfGuard(resolver=FakeDNS({"ci.example.com": PUBLIC_IP})).refusal(url)
    assert refusal is not None and reason in refusal


def test_allowed_hosts_may_use_http_and_private_addresses() -> None:
    dns = FakeDNS({"ci.internal": "10.0.0.5", "other.internal": "10.0.0.6"})
    guard = SsrfGuard(allowed_hosts=["CI.internal", "127.0.0.1", "[::1]"], resolver=dns)
    assert guard.refusal("http://ci.internal:8080/hook") is None
    assert guard.refusal("https://ci.internal/hook") is None
    assert guard.refusal("http://127.0.0.1:9/x") is None
    assert guard.refusal("http://[::1]:9/x") is None
    assert guard.refusal("https://other.internal/hook") is not None
    assert dns.lookups == ["other.internal"]  # allowed hosts need no check before connecting


def test_the_url_parser_that_checks_is_the_one_that_sends() -> None:
    # A classic parser differential: "evil.com\@127.0.0.1" means host 127.0.0.1 to httpx.
    guard = SsrfGuard(resolver=FakeDNS({"evil.com": PUBLIC_IP}))
    refusal = guard.refusal("https://evil.com\\@127.0.0.1/")
    assert refusal is not None and ("user information" in refusal or "loopback" in refusal)


# --------------------------------------------------------------------------------------
# Connecting: pinned to the checked address


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    with CallbackReceiver(CALLBACK_SECRET) as receiver:
        yield receiver


def port_of(receiver: CallbackReceiver) -> int:
    return int(receiver.url.rsplit(":", 1)[1])


def test_dns_rebinding_between_check_and_connect_is_refused(receiver: CallbackReceiver) -> None:
    dns = FakeDNS({"rebind.example.com": [[PUBLIC_IP], ["127.0.0.1"]]})
    sender = CallbackSender(secret=CALLBACK_SECRET, resolver=dns, timeout=2.0)
    url = f"https://rebind.example.com:{port_of(receiver)}/hook"

    assert sender.refusal(url) is None  # first answer: public
    delivery = sender.send(url, message_id="msg_1", payload=PAYLOAD)  # second answer: loopback

    assert not delivery.delivered and delivery.status is None
    assert delivery.error == "the callback host now resolves to a loopback address; not sent"
    assert dns.lookups == ["rebind.example.com", "rebind.example.com"]
    assert receiver.received == []


def test_connection_goes_to_the_resolved_address_with_the_original_host_header(
    receiver: CallbackReceiver,
) -> None:
    # No real DNS knows this name: reaching the receiver proves the checked address was used.
    dns = FakeDNS({"receiver.example.com": "127.0.0.1"})
    sender = CallbackSender(
        secret=CALLBACK_SECRET, allowed_hosts=["receiver.example.com"], resolver=dns
    )
    url = f"http://receiver.example.com:{port_of(receiver)}/hook"
    delivery = sender.send(url, message_id="msg_1", payload=PAYLOAD)
    assert delivery.delivered, delivery
    (callback,) = receiver.received
    assert callback.headers["host"] == f"receiver.example.com:{port_of(receiver)}"
    assert dns.lookups == ["receiver.example.com"]


def test_every_request_resolves_and_checks_again() -> None:
    dns = FakeDNS({"flip.example.com": [["127.0.0.1"], ["10.9.9.9"]]})
    guard = SsrfGuard(resolver=dns)
    with guard.client(timeout=1.0) as client:
        for expected in ("loopback", "private"):
            with pytest.raises(AddressRefusedError) as caught:
                client.get("https://flip.example.com/")
            assert caught.value.reason == expected


def test_unix_sockets_and_proxies_from_the_environment_are_never_used(
    receiver: CallbackReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nobody listens there
    dns = FakeDNS({"receiver.example.com": "127.0.0.1"})
    sender = CallbackSender(
        secret=CALLBACK_SECRET, allowed_hosts=["receiver.example.com"], resolver=dns
    )
    url = f"http://receiver.example.com:{port_of(receiver)}/hook"
    assert sender.send(url, message_id="msg_1", payload=PAYLOAD).delivered


# --------------------------------------------------------------------------------------
# TLS: connect to the address, verify the certificate for the name


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        return


def serve(handler: type[BaseHTTPRequestHandler], context: ssl.SSLContext | None = None) -> Any:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def tls_server(ca: trustme.CA, name: str, names_seen: list[str]) -> Any:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(name).configure_cert(context)

    def record(_socket: Any, server_name: str | None, _context: Any) -> None:
        names_seen.append(server_name or "")

    context.sni_callback = record
    return serve(_Ok, context)


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def test_tls_uses_the_host_name_for_sni_and_certificate(ca: trustme.CA) -> None:
    names: list[str] = []
    server = tls_server(ca, "callback.example.com", names)
    try:
        dns = FakeDNS({"callback.example.com": "127.0.0.1"})
        guard = SsrfGuard(allowed_hosts=["callback.example.com"], resolver=dns)
        port = server.server_address[1]
        with guard.client(timeout=2.0, verify=client_context(ca)) as client:
            response = client.get(f"https://callback.example.com:{port}/")
        assert response.status_code == 200 and response.text == "ok"
        assert names == ["callback.example.com"]
    finally:
        server.shutdown()
        server.server_close()


def test_certificate_for_another_name_is_refused(ca: trustme.CA) -> None:
    server = tls_server(ca, "someone-else.example.com", [])
    try:
        dns = FakeDNS({"callback.example.com": "127.0.0.1"})
        guard = SsrfGuard(allowed_hosts=["callback.example.com"], resolver=dns)
        port = server.server_address[1]
        with (
            guard.client(timeout=2.0, verify=client_context(ca)) as client,
            pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
        ):
            client.get(f"https://callback.example.com:{port}/")
    finally:
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------------------------
# Redirects and slow receivers


def counting_handler(status: int, headers: dict[str, str]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        hits = 0

        def do_GET(self) -> None:
            type(self).hits += 1
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    return Handler


def test_redirects_are_not_followed_even_to_allowed_hosts() -> None:
    target = counting_handler(200, {})
    second = serve(target)
    first = serve(
        counting_handler(302, {"Location": f"http://127.0.0.1:{second.server_address[1]}/"})
    )
    try:
        guard = SsrfGuard(allowed_hosts=["127.0.0.1"])
        with guard.client(timeout=2.0) as client:
            response = client.get(f"http://127.0.0.1:{first.server_address[1]}/")
        assert response.status_code == 302
        assert cast(Any, target).hits == 0
    finally:
        for server in (first, second):
            server.shutdown()
            server.server_close()


def test_a_receiver_that_drips_bytes_hits_the_whole_request_budget() -> None:
    """Each byte arrives well within the read timeout; the whole answer never does."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def drip() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\n")
            while not stop.is_set():
                connection.sendall(b"X")  # one byte of a header that never ends
                time.sleep(0.1)

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    try:
        guard = SsrfGuard(allowed_hosts=["127.0.0.1"])
        with guard.client(timeout=0.8) as client, pytest.raises(httpx.ReadTimeout):
            client.get(f"http://127.0.0.1:{listener.getsockname()[1]}/")
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


# --------------------------------------------------------------------------------------
# Through the webhook: refused before any backup


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://[fd00:ec2::254]/latest/meta-data/", "unique-local"),
        ("https://localhost:8443/admin", "loopback"),
        ("https://10.0.0.1/hook", "private"),
        ("https://100.64.1.1/hook", "shared (100.64/10)"),
        ("https://[::ffff:169.254.169.254]/", "IPv4-mapped"),
        ("http://ci.example.com/hook", "must use https"),
        ("https://user:pw@ci.example.com/hook", "user information"),
    ],
)
def test_refused_callback_url_is_400_before_any_backup(
    client: FlaskClient, emu: Emulator, url: str, rule: str
) -> None:
    body = event(callback_url=url)
    response = client.post("/", data=body, headers=sign(body))
    answer = response.get_json()
    assert response.status_code == 400, answer
    assert answer["error"] == "invalid_event"
    assert answer["message"] == "the callback URL is refused"
    (field,) = answer["fields"]
    assert field["field"] == "callback_url" and rule in field["rule"]
    assert emu.requests() == []


def test_callback_url_setting_is_checked_too(set_env: SetEnv, emu: Emulator) -> None:
    set_env(CALLBACK_URL="https://169.254.169.254/")
    body = event()
    response = make_client().post("/", data=body, headers=sign(body))
    assert response.status_code == 400
    assert emu.requests() == []
