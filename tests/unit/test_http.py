"""The one factory of outbound HTTP clients (clients/http.py): every client follows its rules."""

from __future__ import annotations

import ast
import pathlib

import httpx
import pytest

from clients import http
from clients.http11 import Http11Transport
from clients.tls import shared_context

ROOT = pathlib.Path(__file__).resolve().parents[2]
PRODUCT = ("clients", "events", "handlers")


def test_client_sends_the_user_agent_and_follows_no_redirect() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(302, headers={"Location": "https://elsewhere.example/"})

    with http.client(
        timeout_seconds=2.0, transport=httpx.MockTransport(answer), headers={"Accept": "x/y"}
    ) as client:
        response = client.get("https://api.example/")
    assert response.status_code == 302  # the redirect is returned, not followed
    assert len(seen) == 1
    assert seen[0].headers["user-agent"] == http.USER_AGENT == "predeploy-backup/0.1"
    assert seen[0].headers["accept"] == "x/y"


def test_connecting_is_capped_and_the_other_phases_get_the_whole_timeout() -> None:
    assert http.timeout(10.0) == httpx.Timeout(10.0, connect=3.0)
    assert http.timeout(1.5) == httpx.Timeout(1.5, connect=1.5)
    with http.client(timeout_seconds=10.0) as client:
        assert client.timeout == httpx.Timeout(10.0, connect=http.CONNECT_TIMEOUT_MAX)


def test_clients_share_the_process_tls_context(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    with http.client(timeout_seconds=1.0) as client:  # the default: http.client's transport
        transport = client._transport
        assert isinstance(transport, Http11Transport)
        assert transport._ssl_context is shared_context()
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    with http.client(timeout_seconds=1.0) as client:  # a proxy: httpx's own, same context
        transport = client._transport
        assert isinstance(transport, httpx.HTTPTransport)
        assert transport._pool._ssl_context is shared_context()


def test_capped_collapses_whitespace_and_cuts_long_text() -> None:
    assert http.capped("  a\n  b\tc ") == "a b c"
    long = "x" * 500
    assert http.capped(long) == "x" * (http.MESSAGE_MAX - 1) + "…"
    assert len(http.capped(long)) == http.MESSAGE_MAX


def test_no_product_module_builds_its_own_httpx_client() -> None:
    """The rules live in one place only if every client comes from the factory."""
    builders = []
    for folder in PRODUCT:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == ROOT / "clients" / "http.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("Client", "Timeout", "Limits")
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "httpx"
                ):
                    builders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert builders == []
