"""Test-only endpoints under /_emulator/ (no auth, never logged): inspect and steer the state."""

from __future__ import annotations

import re
from typing import Any

from emulator import rules, views
from emulator.clock import parse_api_time
from emulator.faults import Faults, parse_fault
from emulator.requestlog import RequestLog
from emulator.state import COMPLETED, State
from emulator.wire import Call, Handler, Response, Route

TIMING_KEYS = (
    "backup_seconds",
    "token_ttl_seconds",
    "job_visible_after_seconds",
    "clock_offset_seconds",
    "ignore_time_filters",
)


def reset(state: State, log: RequestLog) -> None:
    state.reset()
    log.clear()


def routes(state: State, log: RequestLog, faults: Faults) -> list[Route]:
    def requests(call: Call) -> Response:
        return Response(200, {"requests": [r.to_dict() for r in log.records()]})

    def do_reset(call: Call) -> Response:
        reset(state, log)
        faults.clear()
        return Response(200, {"reset": True})

    def revoke_tokens(call: Call) -> Response:
        state.revoke_tokens()
        return Response(200, {"revoked": True})

    def put_instance(call: Call) -> Response:
        body = _body(call)
        instance_id = _str(body, "id")
        if instance_id is None:
            raise rules.ADMIN_BAD_REQUEST.error("id is required")
        info, created = state.put_instance(
            instance_id,
            status=_str(body, "status") or "ACTIVE",
            name=_str(body, "name"),
            fail_backups=_bool(body, "fail_backups"),
        )
        instance = views.instance(info, state.config.project_id)
        return Response(201 if created else 200, {"instance": instance})

    def list_instances(call: Call) -> Response:
        project = state.config.project_id
        return Response(
            200, {"instances": [views.instance(i, project) for i in state.list_instances()]}
        )

    def add_backup(call: Call) -> Response:
        body = _body(call)
        instance_id = _str(body, "instance_id")
        if instance_id is None:
            raise rules.ADMIN_BAD_REQUEST.error("instance_id is required")
        begin_text = _str(body, "begin_time")
        begin = parse_api_time(begin_text) if begin_text else None
        if begin_text and begin is None:
            raise rules.ADMIN_BAD_REQUEST.error("begin_time format: 2020-07-07T01:17:05+0800")
        count = body.get("count", 1)
        spacing = body.get("spacing_seconds", 3600)
        if isinstance(count, bool) or not isinstance(count, int):
            raise rules.ADMIN_BAD_REQUEST.error("count must be an integer")
        if isinstance(spacing, bool) or not isinstance(spacing, int | float):
            raise rules.ADMIN_BAD_REQUEST.error("spacing_seconds must be a number")
        seeded = state.add_backup(
            instance_id,
            backup_type=_str(body, "type") or "auto",
            name=_str(body, "name"),
            status=_str(body, "status") or COMPLETED,
            begin_time=begin,
            description=_str(body, "description") or "",
            count=count,
            spacing_seconds=float(spacing),
        )
        if count == 1:
            return Response(201, {"backup": views.listed_backup(seeded[0])})
        # many: ids only, a listing of 10,000 would be the slow part
        return Response(201, {"count": len(seeded), "ids": [b.id for b in seeded]})

    def show_config(call: Call) -> Response:
        return Response(200, {"config": state.configure().as_dict()})

    def set_config(call: Call) -> Response:
        body = _body(call)
        changes: dict[str, float] = {}
        ignore: bool | None = None
        for key, value in body.items():
            if key not in TIMING_KEYS:
                raise rules.ADMIN_BAD_REQUEST.error(f"unknown key {key!r}; use {TIMING_KEYS}")
            if key == "ignore_time_filters":
                if not isinstance(value, bool):
                    raise rules.ADMIN_BAD_REQUEST.error(f"{key} must be true or false")
                ignore = value
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise rules.ADMIN_BAD_REQUEST.error(f"{key} must be a number")
            if value < 0 and key != "clock_offset_seconds":
                raise rules.ADMIN_BAD_REQUEST.error(f"{key} must be a number >= 0")
            changes[key] = float(value)
        timing = state.configure(
            backup_seconds=changes.get("backup_seconds"),
            token_ttl_seconds=changes.get("token_ttl_seconds"),
            job_visible_after_seconds=changes.get("job_visible_after_seconds"),
            clock_offset_seconds=changes.get("clock_offset_seconds"),
            ignore_time_filters=ignore,
        )
        return Response(200, {"config": timing.as_dict()})

    def add_faults(call: Call) -> Response:
        body = _body(call)
        listed = body.get("faults", [body])
        if not isinstance(listed, list) or not all(isinstance(f, dict) for f in listed):
            raise rules.ADMIN_BAD_REQUEST.error("faults must be a list of objects")
        for fault in [parse_fault(f) for f in listed]:
            faults.add(fault)
        return Response(201, {"faults": faults.armed()})

    def show_faults(call: Call) -> Response:
        return Response(200, {"faults": faults.armed()})

    def clear_faults(call: Call) -> Response:
        faults.clear()
        return Response(200, {"faults": []})

    def route(name: str, method: str, path: str, handler: Handler) -> Route:
        return Route(f"admin_{name}", method, re.compile(f"/_emulator/{path}"), handler)

    return [
        route("requests", "GET", "requests", requests),
        route("reset", "POST", "reset", do_reset),
        route("revoke_tokens", "POST", "revoke-tokens", revoke_tokens),
        route("list_instances", "GET", "instances", list_instances),
        route("put_instance", "POST", "instances", put_instance),
        route("add_backup", "POST", "backups", add_backup),
        route("show_config", "GET", "config", show_config),
        route("set_config", "POST", "config", set_config),
        route("add_faults", "POST", "faults", add_faults),
        route("show_faults", "GET", "faults", show_faults),
        route("clear_faults", "DELETE", "faults", clear_faults),
    ]


def _body(call: Call) -> dict[str, Any]:
    return rules.parse_json_object(
        call.request.body, empty=rules.ADMIN_BAD_REQUEST, invalid=rules.ADMIN_BAD_REQUEST
    )


def _str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise rules.ADMIN_BAD_REQUEST.error(f"{key} must be a string")
    return value


def _bool(body: dict[str, Any], key: str) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise rules.ADMIN_BAD_REQUEST.error(f"{key} must be true or false")
    return value
