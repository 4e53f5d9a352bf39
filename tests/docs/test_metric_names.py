"""Every Prometheus metric the docs name is one the gateway exports, by its exported name."""

from __future__ import annotations

import re
from pathlib import Path

import roomcast.server.app  # noqa: F401  (imports every module that defines a metric)
from roomcast.metrics import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"\broomcast_[a-z0-9_]+\b")
#: Exported sample names by metric type: a counter is only ever seen with ``_total``.
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("", "_bucket", "_sum", "_count"),
            "summary": ("", "_sum", "_count"), "info": ("_info",)}


def exported() -> set[str]:
    names: set[str] = set()
    for family in REGISTRY.collect():
        if family.name.startswith("roomcast_"):
            names.update(family.name + s for s in SUFFIXES.get(family.type, ("",)))
    return names


def named_in_docs() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for name in NAME.findall(doc.read_text()):
            found.setdefault(name, set()).add(str(doc.relative_to(ROOT)))
    return found


def test_the_docs_name_metrics_as_they_are_exported() -> None:
    names = exported()
    assert "roomcast_slow_consumers_dropped_total" in names
    unknown = {n: sorted(docs) for n, docs in named_in_docs().items() if n not in names}
    assert unknown == {}


def test_a_counter_without_its_total_suffix_is_caught() -> None:
    assert "roomcast_slow_consumers_dropped" not in exported()
