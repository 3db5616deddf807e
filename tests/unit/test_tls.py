"""The one TLS context the function's HTTP clients share."""

from __future__ import annotations

import contextlib
import ssl

import pytest
import trustme

from clients.tls import shared_context


def test_shared_context_is_built_once_per_process() -> None:
    assert shared_context() is shared_context()


def test_shared_context_verifies_certificates_and_host_names() -> None:
    context = shared_context()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert context.minimum_version in (ssl.TLSVersion.MINIMUM_SUPPORTED, ssl.TLSVersion.TLSv1_2)


def test_the_ca_bundle_loads_at_the_first_handshake_not_when_built() -> None:
    """Building the clients costs no CA bundle load; the first TLS connection pays it once."""
    context = shared_context.__wrapped__()  # a fresh one, as a new process has
    assert context.cert_store_stats()["x509_ca"] == 0
    context.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="example.com")
    loaded = context.cert_store_stats()["x509_ca"]
    assert loaded > 0  # the CA bundle (certifi's, or SSL_CERT_FILE/SSL_CERT_DIR)
    context.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="example.com")
    assert context.cert_store_stats()["x509_ca"] == loaded  # once


def test_a_certificate_from_an_unknown_authority_is_refused() -> None:
    """Verification is on at the handshake: a server whose CA is not trusted is refused."""
    authority = trustme.CA()
    server = authority.issue_cert("localhost")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.configure_cert(server_context)
    client_side, server_side = ssl.MemoryBIO(), ssl.MemoryBIO()
    context = shared_context.__wrapped__()
    client = context.wrap_bio(client_side, server_side, server_hostname="localhost")
    served = server_context.wrap_bio(server_side, client_side, server_side=True)
    with pytest.raises(ssl.SSLCertVerificationError):
        for _ in range(10):  # drive the handshake in memory, both sides in turn
            for end in (client, served):
                with contextlib.suppress(ssl.SSLWantReadError):
                    end.do_handshake()
