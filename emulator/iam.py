"""IAM v3 password authentication: parse POST /v3/auth/tokens, check it, shape the token."""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from typing import Any

from emulator import rules
from emulator.clock import iam_time
from emulator.config import EmulatorConfig
from emulator.state import State, Token

_IDS = uuid.UUID("5b0e9f5e-2f7e-4d1b-9a49-0c8c1f3b7a11")
_NEVER = ""  # IAM's "password_expires_at" for a password that does not expire


def _stable_id(kind: str, name: str) -> str:
    return uuid.uuid5(_IDS, f"{kind}:{name}").hex


@dataclass(frozen=True)
class Identity:
    """The one user/domain/project the emulator knows; ids are derived from the names."""

    user_id: str
    user_name: str
    domain_id: str
    domain_name: str
    project_id: str
    project_name: str

    @classmethod
    def from_config(cls, config: EmulatorConfig) -> Identity:
        return cls(
            user_id=_stable_id("user", config.username),
            user_name=config.username,
            domain_id=_stable_id("domain", config.domain_name),
            domain_name=config.domain_name,
            project_id=config.project_id,
            project_name=config.project_name,
        )

    @property
    def region(self) -> str:
        return self.project_name.split("_")[0]


@dataclass(frozen=True)
class PasswordLogin:
    user_name: str | None
    user_id: str | None
    domain_name: str | None
    domain_id: str | None
    password: str
    #: ("project", id, name), ("domain", id, name) or ("none", None, None)
    scope: tuple[str, str | None, str | None]


def _object(parent: dict[str, Any], key: str) -> dict[str, Any]:
    value = parent.get(key)
    if not isinstance(value, dict):
        raise rules.IAM_BAD_REQUEST.error(f"Expecting to find {key} in the request body.")
    return value


def _opt_str(parent: dict[str, Any], key: str) -> str | None:
    value = parent.get(key)
    if value is not None and not isinstance(value, str):
        raise rules.IAM_BAD_REQUEST.error(f"{key} must be a string.")
    return value


def _id_or_name(parent: dict[str, Any], key: str) -> tuple[str | None, str | None]:
    ref = _object(parent, key)
    ref_id, ref_name = _opt_str(ref, "id"), _opt_str(ref, "name")
    if ref_id is None and ref_name is None:
        raise rules.IAM_BAD_REQUEST.error(f"{key} needs an id or a name.")
    return ref_id, ref_name


def parse_login(raw: bytes) -> PasswordLogin:
    body = rules.parse_json_object(raw, empty=rules.IAM_BAD_REQUEST, invalid=rules.IAM_BAD_REQUEST)
    auth = _object(body, "auth")
    identity = _object(auth, "identity")
    methods = identity.get("methods")
    if not isinstance(methods, list) or "password" not in methods:
        raise rules.IAM_BAD_REQUEST.error("Only the password method is supported.")
    user = _object(_object(identity, "password"), "user")
    password = _opt_str(user, "password")
    if password is None:
        raise rules.IAM_BAD_REQUEST.error("Expecting to find password in user.")
    user_id, user_name = _opt_str(user, "id"), _opt_str(user, "name")
    domain_id = domain_name = None
    if user_name is not None or "domain" in user:
        domain_id, domain_name = _id_or_name(user, "domain")
    if user_id is None and user_name is None:
        raise rules.IAM_BAD_REQUEST.error("Expecting to find id or name in user.")
    scope: tuple[str, str | None, str | None] = ("none", None, None)
    raw_scope = auth.get("scope")
    if raw_scope is not None:
        if not isinstance(raw_scope, dict):
            raise rules.IAM_BAD_REQUEST.error("scope must be an object.")
        kind = "project" if "project" in raw_scope else "domain"
        scope = (kind, *_id_or_name(raw_scope, kind))
    return PasswordLogin(user_name, user_id, domain_name, domain_id, password, scope)


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def login(state: State, identity: Identity, request: PasswordLogin) -> Token:
    """Check credentials and scope; unknown scope answers 401 like wrong credentials do."""
    if request.user_id is not None:
        user_ok = _same(request.user_id, identity.user_id)
    else:
        user_ok = _same(request.user_name, identity.user_name) and (
            _same(request.domain_name, identity.domain_name)
            or _same(request.domain_id, identity.domain_id)
        )
    if not (user_ok and _same(request.password, state.config.password)):
        raise rules.IAM_WRONG_CREDENTIALS.error()
    kind, scope_id, scope_name = request.scope
    if kind == "project":
        if scope_id not in (None, identity.project_id) or scope_name not in (
            None,
            identity.project_name,
        ):
            raise rules.IAM_UNKNOWN_PROJECT.error()
        return state.issue_token(identity.project_id)
    if kind == "domain" and (
        scope_id not in (None, identity.domain_id) or scope_name not in (None, identity.domain_name)
    ):
        raise rules.IAM_UNKNOWN_PROJECT.error("The domain in the scope does not exist.")
    return state.issue_token(None)


def token_body(token: Token, identity: Identity, base_url: str, *, catalog: bool) -> dict[str, Any]:
    domain = {"id": identity.domain_id, "name": identity.domain_name}
    body: dict[str, Any] = {
        "expires_at": iam_time(token.expires),
        "issued_at": iam_time(token.issued),
        "methods": ["password"],
        "user": {
            "id": identity.user_id,
            "name": identity.user_name,
            "domain": dict(domain),
            "password_expires_at": _NEVER,
        },
        "roles": [{"id": _stable_id("role", "te_admin"), "name": "te_admin"}],
    }
    if token.project_id is not None:
        body["project"] = {
            "id": identity.project_id,
            "name": identity.project_name,
            "domain": dict(domain),
        }
    else:
        body["domain"] = dict(domain)
    if catalog:
        body["catalog"] = [
            _catalog_entry("gaussdb-mysql", "gaussdb-mysql", base_url, identity.region),
            _catalog_entry("identity", "iam", f"{base_url}/v3", identity.region),
        ]
    return {"token": body}


def _catalog_entry(kind: str, name: str, url: str, region: str) -> dict[str, Any]:
    return {
        "type": kind,
        "name": name,
        "id": _stable_id("service", kind),
        "endpoints": [
            {
                "id": _stable_id("endpoint", kind),
                "interface": "public",
                "region": region,
                "region_id": region,
                "url": url,
            }
        ],
    }
