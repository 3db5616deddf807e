"""The one TLS context the function's HTTP clients share."""

from __future__ import annotations

import ssl

from clients.tls import shared_context


def test_shared_context_is_built_once_per_process() -> None:
    assert shared_context() is shared_context()


def test_shared_context_verifies_certificates_and_host_names() -> None:
    context = shared_context()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert context.cert_store_stats()["x509_ca"] > 0  # a CA bundle is loaded
