"""Routing and the IAM/TaurusDB handlers: one ``App.handle(Request) -> Response`` entry point.

Order per request, as on the real gateway: match route (else APIGW.0101) → authenticate
(TaurusDB routes) → validate → act on state. A later fault-injection layer can step in right
after the match, keyed by ``Route.name``.
"""

from __future__ import annotations

import re
import sys
import time
import traceback
import uuid

from emulator import admin, iam, rules, smn, views
from emulator.auth import authenticate
from emulator.faults import DropConnection, Faults
from emulator.requestlog import RequestLog, record_of
from emulator.state import State
from emulator.wire import Call, Handler, Request, Response, Route

ADMIN_PREFIX = "/_emulator/"
_PROJECT = r"/v3/(?P<project_id>[^/]+)"


class App:
    def __init__(self, state: State, log: RequestLog) -> None:
        self.state = state
        self.log = log
        self.faults = Faults()
        self.smn = smn.SmnSigner()
        self.identity = iam.Identity.from_config(state.config)
        self.routes: list[Route] = [
            Route("issue_token", "POST", re.compile(r"/v3/auth/tokens"), self.issue_token),
            _api("create_backup", "POST", r"/backups/create", self.create_backup),
            _api("list_backups", "GET", r"/backups", self.list_backups),
            _api("delete_backup", "DELETE", r"/backups/(?P<backup_id>[^/]+)", self.delete_backup),
            _api("show_job", "GET", r"/jobs", self.show_job),
            _api("show_instance", "GET", r"/instances/(?P<instance_id>[^/]+)", self.show_instance),
            *admin.routes(state, log, self.faults),
            *smn.routes(self.smn),
        ]

    def handle(self, request: Request) -> Response:
        request_id = uuid.uuid4().hex
        fault = None
        try:
            route, params = self._match(request)
            fault = self.faults.take(route.name)
            if fault is not None:
                time.sleep(fault.latency_seconds)
                if fault.drop == "before":
                    raise DropConnection
            if fault is not None and fault.status is not None:
                status, body, headers = fault.answer(request_id, request.headers)
                response = Response(status, body, headers)
            else:
                if route.authenticated:
                    authenticate(request, params["project_id"], self.state)
                response = route.handler(Call(request, params, request_id))
        except DropConnection:
            self._finish(request, Response(0, {}), request_id)
            raise
        except rules.ApiError as exc:
            response = Response(exc.status, exc.body(request_id))
        except Exception:
            traceback.print_exc(file=sys.stderr)
            response = Response(500, rules.SERVER_FAILURE.error().body(request_id))
        finished = self._finish(request, response, request_id)
        if fault is not None and fault.drop == "after":
            raise DropConnection
        return finished

    def reject(self, request: Request, error: rules.ApiError) -> Response:
        """Answer a request the transport could not read (e.g. too large)."""
        request_id = uuid.uuid4().hex
        return self._finish(request, Response(error.status, error.body(request_id)), request_id)

    def _finish(self, request: Request, response: Response, request_id: str) -> Response:
        response.headers["X-Request-Id"] = request_id
        if not request.path.startswith(ADMIN_PREFIX):
            self.log.append(record_of(request, response.status, request_id))
        return response

    def _match(self, request: Request) -> tuple[Route, dict[str, str]]:
        for route in self.routes:
            params = route.match(request.path)
            if params is not None and route.method == request.method:
                return route, params
        if request.path.startswith(ADMIN_PREFIX):
            raise rules.ADMIN_NOT_FOUND.error(f"No admin endpoint {request.method} {request.path}")
        raise rules.API_NOT_FOUND.error()

    # --- IAM ------------------------------------------------------------------------------
    def issue_token(self, call: Call) -> Response:
        login = iam.parse_login(call.request.body)
        token = iam.login(self.state, self.identity, login)
        with_catalog = not call.request.query.get("nocatalog")
        body = iam.token_body(token, self.identity, call.request.base_url, catalog=with_catalog)
        return Response(201, body, {"X-Subject-Token": token.value})

    # --- TaurusDB -------------------------------------------------------------------------
    def create_backup(self, call: Call) -> Response:
        request = rules.parse_create_backup(call.request.body)
        backup, _job = self.state.create_backup(request)
        return Response(201, views.created_backup(backup))

    def list_backups(self, call: Call) -> Response:
        query = rules.parse_backup_query(call.request.query)
        backups, total = self.state.list_backups(query)
        body = {"backups": [views.listed_backup(b) for b in backups], "total_count": total}
        return Response(200, body)

    def delete_backup(self, call: Call) -> Response:
        backup = self.state.delete_backup(call.params["backup_id"])
        return Response(200, {"backup_id": backup.id, "backup_name": backup.name})

    def show_job(self, call: Call) -> Response:
        job_id = call.request.query.get("id")
        if not job_id:
            raise rules.PARAMETER_ERROR.error()
        return Response(200, {"job": views.job(self.state.get_job(job_id))})

    def show_instance(self, call: Call) -> Response:
        instance_id = rules.check_instance_id(call.params["instance_id"])
        info = self.state.get_instance(instance_id)
        return Response(200, {"instance": views.instance(info, self.state.config.project_id)})


def _api(name: str, method: str, path: str, handler: Handler) -> Route:
    """A TaurusDB route: under /v3/{project_id}, token required."""
    return Route(name, method, re.compile(_PROJECT + path), handler, authenticated=True)
