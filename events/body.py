"""Reading a delivery's body within ``MAX_BODY_BYTES``, before anything parses it."""

from __future__ import annotations

from typing import IO

from errors import InvalidEventError, PayloadTooLargeError

__all__ = ["read_body"]


def read_body(stream: IO[bytes], declared: int | None, limit: int) -> bytes:
    """The body, at most ``limit`` bytes: a larger one is refused without reading it all.

    ``declared`` is the request's ``Content-Length`` (``None`` when chunked): a body declared
    too large is refused before a byte is read; one that only turns out too large stops at
    ``limit + 1`` bytes.
    """
    if declared is not None and declared > limit:
        raise PayloadTooLargeError(f"the body is larger than MAX_BODY_BYTES ({limit} bytes)")
    try:
        body = stream.read(limit + 1)
    except Exception:  # the server's own errors: malformed chunks, an aborted upload
        raise InvalidEventError(
            "the body could not be read (malformed chunked encoding or an interrupted upload)"
        ) from None
    if len(body) > limit:
        raise PayloadTooLargeError(f"the body is larger than MAX_BODY_BYTES ({limit} bytes)")
    return body
