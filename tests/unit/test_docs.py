"""The documentation holds together: no dangling link or anchor, the same names as template.yaml,
and a README short enough to read as a front door."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import ROOT

PAGES = sorted(
    [
        ROOT / "README.md",
        ROOT / "SECURITY.md",
        ROOT / "CHANGELOG.md",
        ROOT / "bench" / "README.md",
        *(ROOT / "docs").glob("*.md"),
    ]
)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def _prose(page: Path) -> str:
    """The page without its code blocks (a `](` inside code is not a link)."""
    return FENCE.sub("", page.read_text())


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(m) for m in re.findall(r"^#{1,6} (.+)$", _prose(page), flags=re.MULTILINE)}


def _links() -> list[tuple[Path, str]]:
    return [
        (page, target)
        for page in PAGES
        for target in LINK.findall(_prose(page))
        if not re.match(r"[a-z]+:", target)  # https:, mailto:: not ours to check offline
    ]


def test_the_pages_exist_and_the_readme_is_short() -> None:
    names = {p.name for p in (ROOT / "docs").glob("*.md")}
    assert {
        "sources.md",
        "configuration.md",
        "responses.md",
        "reliability.md",
        "deployment.md",
        "security.md",
        "operations.md",
        "emulator.md",
    } <= names
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


@pytest.mark.parametrize(("page", "target"), _links(), ids=lambda v: str(v).rsplit("/", 1)[-1])
def test_every_relative_link_and_anchor_resolves(page: Path, target: str) -> None:
    path, _, anchor = target.partition("#")
    linked = (page.parent / path).resolve() if path else page
    assert linked.exists(), f"{page.relative_to(ROOT)} links to missing {path}"
    if anchor:
        assert linked.suffix == ".md", f"{page.relative_to(ROOT)}: anchor on {path}"
        assert anchor in _anchors(linked), f"{page.relative_to(ROOT)}: no #{anchor} in {path}"


def test_links_are_checked_at_all() -> None:
    """The link test above must have links to look at, cross-page anchors among them."""
    targets = [t for _, t in _links()]
    assert len(targets) > 20
    assert any("#" in t and not t.startswith("#") for t in targets)


def test_slug_follows_github() -> None:
    assert _slug("3. Server-side request forgery (SSRF)") == "3-server-side-request-forgery-ssrf"
    assert _slug("Dry run, several instances, retention") == "dry-run-several-instances-retention"
    assert _slug("`webhook` and `event`") == "webhook-and-event"


def _template() -> list[dict[str, Any]]:
    with (ROOT / "template.yaml").open() as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc]


def _doc_manifests() -> list[tuple[Path, dict[str, Any]]]:
    """Every Kubernetes document in a ```yaml block of the docs."""
    found = []
    for page in PAGES:
        for block in re.findall(r"^```ya?ml\n(.*?)^```", page.read_text(), re.M | re.S):
            for doc in yaml.safe_load_all(block):
                if isinstance(doc, dict) and "kind" in doc:
                    found.append((page, doc))
    return found


def _sink(doc: dict[str, Any]) -> str:
    spec = doc["spec"]
    ref = spec["subscriber"]["ref"] if doc["kind"] == "Trigger" else spec["sink"]["ref"]
    return str(ref["name"])


def test_manifests_in_the_docs_use_the_template_names() -> None:
    template = {doc["kind"]: doc for doc in _template() if doc["kind"] != "Service"}
    manifests = _doc_manifests()
    assert {doc["kind"] for _, doc in manifests} >= {"Trigger", "KafkaSource"}
    for page, doc in manifests:
        ours = template[doc["kind"]]
        where = f"{page.relative_to(ROOT)}: {doc['kind']}"
        assert doc["metadata"]["name"] == ours["metadata"]["name"], where
        assert _sink(doc) == _sink(ours), where
        if doc["kind"] == "Trigger":
            assert doc["spec"]["filter"] == ours["spec"]["filter"], where


def test_service_names_and_event_type_in_the_docs_are_the_template_ones() -> None:
    services = {d["metadata"]["name"] for d in _template() if d["kind"] == "Service"}
    triggers = [d for d in _template() if d["kind"] == "Trigger"]
    types = {d["spec"]["filter"]["attributes"]["type"] for d in triggers}
    text = "\n".join(p.read_text() for p in PAGES)
    for name in services | types:
        assert f"`{name}`" in text, f"{name} of template.yaml is not in the docs"
    # A Knative service or CloudEvents type the docs name must be one the template has.
    named = set(re.findall(r"`(predeploy-backup-event\w*)`", text))
    assert named <= services, named - services
    ce_types = set(re.findall(r"\b((?:com|dev|io|org)\.[\w.-]*pre-?deploy)\b", text))
    assert ce_types <= types, ce_types - types


def test_the_docs_do_not_send_readers_to_an_unseen_issue() -> None:
    for page in PAGES:
        assert not re.search(r"\bthe issue\b", page.read_text(), re.I), page.relative_to(ROOT)


def test_every_step_outcome_in_the_logs_is_documented() -> None:
    """Operators search the log by ``outcome``: every value the product code writes on a step's
    line (callbacks, retries, retention, …) is named in docs/operations.md, whose "Logs"
    section tells them apart from the trigger's own outcome line."""
    written: set[str] = set()
    for folder in ("handlers", "clients", "events"):
        for path in (ROOT / folder).rglob("*.py"):
            for line in path.read_text().splitlines():
                for value in re.findall(r'"outcome":\s*([^,}]+)', line):
                    written.update(re.findall(r'"([a-z_]+)"', value))  # x, or x if … else y
    assert {"callback_delivered", "callback_failed", "retention_deleted"} <= written
    logs_section = (ROOT / "docs" / "operations.md").read_text().split("## Logs", 1)[1]
    missing = sorted(name for name in written if f"`{name}`" not in logs_section)
    assert not missing, f"log outcomes not in docs/operations.md's Logs section: {missing}"
