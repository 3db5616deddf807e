"""FunctionGraph's APIG event: an HTTP request to API Gateway, handed to an event function.

API Gateway (APIG) wraps the caller's request into JSON (``httpMethod``, ``path``,
``headers``, ``body``, ``isBase64Encoded``, ``requestContext``) and expects the answer in its
own shape, ``{"statusCode", "headers", "body", "isBase64Encoded"}``, which it turns back into
an HTTP response. An API may be open to the internet, so the wrapped request is served like a
request to ``webhook``: its sender is detected and verified (signature or token) over the
raw body, which is why a base64 body is decoded to the exact bytes that were sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from errors import InvalidEventError
from events.base import Headers, decode_base64, json_object, validate
from events.senders import APIG

__all__ = ["LABEL", "NAME", "ApigEvent", "matches", "open", "seal"]

NAME, LABEL, matches = APIG.NAME, APIG.LABEL, APIG.matches


class ApigEvent(BaseModel):
    """The APIG event, with APIG's field names."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    httpMethod: str = Field(min_length=1)
    path: str = "/"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str = ""
    isBase64Encoded: bool = False
    requestContext: dict[str, Any] = Field(default_factory=dict)

    @field_validator("headers", mode="before")
    @classmethod
    def _single_values(cls, value: Any) -> Any:
        """A header sent more than once may come as a list: join it the way HTTP does."""
        if isinstance(value, dict):
            return {
                str(name): ", ".join(map(str, item)) if isinstance(item, list) else item
                for name, item in value.items()
            }
        return value


def open(headers: Headers, body: bytes) -> tuple[dict[str, str], bytes]:
    """The wrapped request's headers (names lower-cased) and its body's exact bytes."""
    event = validate(ApigEvent, json_object(body), "APIG event")
    if event.httpMethod.upper() != "POST":
        raise InvalidEventError(f"the API must forward POST requests (got {event.httpMethod})")
    inner = decode_base64(event.body, "body") if event.isBase64Encoded else event.body.encode()
    return {name.lower(): value for name, value in event.headers.items()}, inner


def seal(
    status: int, body: Mapping[str, Any], headers: Mapping[str, str]
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """APIG's response shape, always as HTTP 200: APIG takes the status from ``statusCode``."""
    envelope = {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", **headers},
        "body": json.dumps(dict(body)),
        "isBase64Encoded": False,
    }
    return 200, envelope, {}
