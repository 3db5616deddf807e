"""Outbound calls: this package is the only code that does network I/O.

``auth`` holds the two ways to authenticate against Open Telekom Cloud (an IAM token, or
AK/SK request signing), each an ``httpx.Auth``; ``taurusdb`` is the typed TaurusDB API client.
Import the modules themselves; nothing is re-exported here so that importing ``clients``
stays cheap.
"""
