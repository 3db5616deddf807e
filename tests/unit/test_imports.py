"""A cold start imports only what the first delivery needs (issue 15, item 2).

Each check runs in a fresh interpreter, since this test process has imported everything
already. The framework itself imports the ``cloudevents`` library (for its CloudEvent
functions), so the checks are about what importing ``main`` adds on top of the framework.
"""

from __future__ import annotations

import json
import subprocess
import sys

from emulator import Emulator
from helpers import ROOT, WEBHOOK_SECRET, event, function_env, sign

_HEAVY = ("cryptography", "cloudevents")
_LIGHT_EVENTS = {"events", "events.base", "events.senders"}


def _modules(code: str, env: dict[str, str] | None = None) -> set[str]:
    """The modules loaded after running ``code`` in a fresh interpreter in the project root."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def test_importing_main_loads_no_source_module_and_no_heavy_library() -> None:
    framework = _modules("import functions_framework")
    added = _modules("import functions_framework\nimport main") - framework
    assert "main" in added
    assert sorted(m for m in added if m.split(".")[0] in _HEAVY) == []
    assert sorted(m for m in added if m.split(".")[0] == "events") == sorted(_LIGHT_EVENTS)


_DELIVER = """
import functions_framework
app = functions_framework.create_app(target="webhook", source="main.py")
response = app.test_client().post("/", data={body!r}, headers={headers!r})
assert response.status_code == {status}, response.get_data(as_text=True)
"""


def test_a_first_event_served_loads_no_other_source_module(emu: Emulator) -> None:
    """A generic event, served through to its backup (services built, API called)."""
    body = event()
    code = _DELIVER.format(body=body, headers=sign(body), status=202)
    loaded = _modules(code, function_env(emu.url))
    assert "events.generic" in loaded
    others = {"events.smn", "events.cloudevents", "events.github", "events.pubsub"}
    assert sorted(loaded & others) == []
    assert "cryptography" not in loaded


def test_a_delivery_loads_its_own_source_module_and_no_other() -> None:
    """A forged generic event (refused before any upstream call) loads ``events.generic``."""
    body = event()
    headers = {**sign(body), "webhook-signature": sign(b"{}")["webhook-signature"]}
    code = _DELIVER.format(body=body, headers=headers, status=401)
    loaded = _modules(code, {"WEBHOOK_SECRET": WEBHOOK_SECRET})
    assert "events.generic" in loaded
    others = {"events.smn", "events.cloudevents", "events.github", "events.gitlab"}
    assert sorted(loaded & others) == []
    assert "cryptography" not in loaded


def test_an_smn_delivery_loads_the_smn_module_and_cryptography() -> None:
    """Recognised by its header alone; refused (no SMN_TOPIC_URNS), but only after loading."""
    body = json.dumps({"type": "Notification", "message": "{}"}).encode()
    headers = {"Content-Type": "application/json", "X-SMN-MESSAGE-TYPE": "Notification"}
    code = _DELIVER.format(body=body, headers=headers, status=401)
    loaded = _modules(code, {"WEBHOOK_SECRET": WEBHOOK_SECRET})
    assert "events.smn" in loaded
    assert "cryptography" in loaded
    assert "events.github" not in loaded
