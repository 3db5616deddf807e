"""Entry points of the function; they wire events → handlers → clients → responses.

``webhook`` (HTTP, internet-facing): ``functions-framework --target=webhook``.
``event`` (queue deliveries: CloudEvents, Pub/Sub push, FunctionGraph triggers on ``/invoke``):
``functions-framework --target=event``. Both are plain HTTP functions, so a malformed delivery
gets our JSON error, never a page that echoes the request; both answer ``GET /healthz`` and
``/readyz`` (health.py). The settings and services are built once per process (runtime.py),
the answers and their outcome log lines shaped in responses.py, each failure knows its own
answer (errors.py).
"""

from __future__ import annotations

import os

import flask
import functions_framework

import events
import health
import logs
import responses
from errors import PredeployError
from events.base import check_batch, read_body
from events.senders import redelivers_every_failure
from handlers import records, status
from runtime import Runtime

__all__ = ["event", "prefetch", "webhook"]

logs.configure()  # LOG_LEVEL from the environment until the settings are loaded
_runtime = Runtime()


@functions_framework.http
def webhook(request: flask.Request) -> flask.Response:
    """Pipelines' webhooks: a signed pre-deploy event in, ``202 {job_id, backup}`` out."""
    return _serve(request, events.WEBHOOK, "webhook")


@functions_framework.http
def event(request: flask.Request) -> flask.Response:
    """Queue deliveries: ``{"results": [...]}``, non-2xx only when a retry can help."""
    return _serve(request, events.EVENT, "event")


def prefetch() -> None:
    """Build the services and fetch what the first event would wait for, in the background:
    called by ``server.py`` after loading this module, and in functions-framework's gunicorn
    worker as it is forked (a thread of the master would not survive the fork)."""
    _runtime.prefetch()


os.register_at_fork(after_in_child=prefetch)


def _serve(request: flask.Request, entry: events.Entry, name: str) -> flask.Response:
    """A health probe, or one request under its outcome log line; every failure answered."""
    if request.method in ("GET", "HEAD"):
        probe = health.probe(request.path, _runtime.settings)
        if probe is not None:
            return responses.to_flask(probe, _runtime.redact)
    with logs.EventLog(dict(request.headers.items()), entry_point=name) as event_log:
        headers = {key.lower(): value for key, value in request.headers.items()}
        try:
            answer = _route(request, headers, entry, event_log)
        except PredeployError as exc:
            acknowledge = (
                entry.queue and not exc.redelivery_helps and redelivers_every_failure(headers)
            )
            answer = responses.of_failure(exc, event_log, acknowledge=acknowledge)
        except Exception as exc:  # a bug
            answer = responses.of_internal_error(exc, event_log)
    return responses.to_flask(answer, _runtime.redact)


def _route(
    request: flask.Request, headers: dict[str, str], entry: events.Entry, event_log: logs.EventLog
) -> responses.Answer:
    """By method and path: FunctionGraph's initializer, the status endpoint, a delivery."""
    if entry.queue and request.path.rstrip("/") == "/init":
        _runtime.services()  # FunctionGraph's initializer: a broken setting shows here
        return responses.Answer(200, {"status": "ready"})
    if request.method == "GET" and not entry.queue:  # the status endpoint, signed as events are
        lookup = status.route(request.path)
        if lookup is None:
            return responses.Answer(404, {"error": "not_found", "message": status.PATHS})
        settings = _runtime.settings()
        events.GENERIC.verify(headers, request.get_data(), settings)
        api = _runtime.services().taurusdb
        return responses.Answer(200, lookup(api, settings.public_url, settings.allowed_instances))
    if request.method != "POST":
        allow = "POST" if entry.queue else "GET, POST"
        failure = {"error": "method_not_allowed", "message": "use POST"}
        return responses.Answer(405, failure, {"Allow": allow})
    body = read_body(request.stream, request.content_length, _runtime.settings().max_body_bytes)
    envelope = entry.envelope(headers, body)
    if envelope is None:
        return _deliver(entry, headers, body, event_log)
    try:  # a wrapped HTTP request (FunctionGraph APIG): served like webhook, answered wrapped
        inner_headers, inner_body = envelope.open(headers, body)
        reply = _deliver(events.WEBHOOK, inner_headers, inner_body, event_log)
    except PredeployError as exc:
        reply = responses.of_failure(exc, event_log, acknowledge=False)
    return responses.Answer(*envelope.seal(reply.status, reply.body, reply.headers))


def _deliver(
    entry: events.Entry, headers: dict[str, str], body: bytes, event_log: logs.EventLog
) -> responses.Answer:
    """Which sender, verified and parsed into records, each handled, the outcomes answered."""
    settings = _runtime.settings()
    source = entry.detect(headers, body)
    event_log.note(source=source.NAME)
    delivery = events.receive(
        entry, headers, body, settings, source, certificates=lambda u: _runtime.smn().certificate(u)
    )
    check_batch(delivery.records, settings)
    outcomes = records.handle_delivery(delivery.records, _runtime.services(), queue=entry.queue)
    return responses.of_delivery(
        delivery.records,
        outcomes,
        event_log,
        listed=entry.queue or delivery.batch,
        queue=entry.queue,
        public_url=settings.public_url,
    )
