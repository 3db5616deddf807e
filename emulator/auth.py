"""The API gateway's token check in front of every TaurusDB call.

AK/SK request signing would be a second verifier here, chosen by the Authorization header.
"""

from __future__ import annotations

from emulator import rules
from emulator.state import State, Token
from emulator.wire import Request


def authenticate(request: Request, project_id: str, state: State) -> Token:
    """Missing/unknown token → APIGW.0301; expired or other project's token → APIGW.0307."""
    value = request.header("X-Auth-Token")
    if not value:
        raise rules.TOKEN_MISSING.error()
    token, expired = state.find_token(value)
    if token is None:
        raise rules.TOKEN_INVALID.error()
    if expired or token.project_id != project_id:
        raise rules.TOKEN_EXPIRED.error()
    return token
