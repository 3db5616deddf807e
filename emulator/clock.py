"""Time sources and the two timestamp formats the real services use."""

from __future__ import annotations

import time
from datetime import UTC, datetime

#: TaurusDB timestamps: numeric offset without colon, e.g. 2020-07-07T01:17:05+0800.
API_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
#: IAM timestamps: UTC with microseconds and a literal Z.
IAM_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class Clock:
    """Monotonic time drives the state machines; wall time only labels them.

    A separate class so a test or a later fault-injection task can substitute a fake clock.
    """

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)


def api_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(API_TIME_FORMAT)


def iam_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(IAM_TIME_FORMAT)


def parse_api_time(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, API_TIME_FORMAT)
    except ValueError:
        return None
