"""Nothing in the repository points outside it: no outside files, no tracker numbers.

A reader of a clone has only the clone. References to notes kept elsewhere, to absolute
paths of one machine, or to issue numbers of one tracker mean nothing to them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.docs.support import ROOT, text_files, tracked_files

# Spelled in pieces, so that this file does not match its own patterns.
FORBIDDEN = {
    "a path into a sibling directory of the checkout": re.compile(r"\.\./" + "shared"),
    "an absolute path of a development machine": re.compile(r"(?<![\w.~-])/" + r"work/"),
    "an issue number": re.compile(r"\bissues?\s*#?\s*\d+\b", re.I),
}
#: Markdown files that tools write but the repository does not keep.
GENERATED = {"RESULTS-quick.md"}
MD_NAME = re.compile(r"(?<![\w/.-])(/?(?:\.\./|\./)?(?:[\w.-]+/)*[\w.-]+\." + r"md)\b")


def offences(text: str) -> list[str]:
    """What is wrong with one file's text, one entry per line that is."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for what, pattern in FORBIDDEN.items():
            match = pattern.search(line)
            if match:
                found.append(f"{number}: {what}: {match.group(0)!r}")
    return found


def missing_markdown(path: Path, text: str, known: set[str], names: set[str]) -> list[str]:
    """Markdown files a file names that the repository does not contain."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for ref in MD_NAME.findall(line):
            name = ref.rsplit("/", 1)[-1]
            relative = (path.parent / ref).resolve()
            inside = relative.is_relative_to(ROOT)
            rel = str(relative.relative_to(ROOT)) if inside else None
            if name in GENERATED:
                continue
            if not inside or (rel not in known and ref.lstrip("./") not in known
                              and ("/" in ref or name not in names)):
                found.append(f"{number}: {ref!r} is not a file of this repository")
    return found


def test_no_tracked_file_points_outside_the_repository() -> None:
    report = []
    for path, text in text_files().items():
        report += [f"{path.relative_to(ROOT)}:{entry}" for entry in offences(text)]
    assert not report, "state the fact or cite a file of the repository:\n" + "\n".join(report)


def test_every_markdown_file_named_is_in_the_repository() -> None:
    files = tracked_files()
    known = {str(p.relative_to(ROOT)) for p in files}
    names = {p.name for p in files}
    report = []
    for path, text in text_files().items():
        report += [f"{path.relative_to(ROOT)}:{entry}"
                   for entry in missing_markdown(path, text, known, names)]
    assert not report, "\n".join(report)


@pytest.mark.parametrize("line", [
    "see ../" "shared/notes",
    "(issue" " 7 §4)",
    "Issue" " #12's targets",
    "the issues" " 3 and 4",
    "cd /" "work/main && make",
])
def test_the_patterns_catch_what_they_are_for(line: str) -> None:
    assert offences(line)


@pytest.mark.parametrize("line", [
    "https://github.com/aio-libs/aiohttp/issues/",
    "color: #123456",
    "a/work/b and ~/" "work/x",
    "tissue 3",
])
def test_the_patterns_leave_ordinary_text_alone(line: str) -> None:
    assert not offences(line)


def test_markdown_names_are_checked() -> None:
    doc = ROOT / "docs" / "protocol.md"
    known = {"docs/protocol.md", "README.md"}
    names = {"protocol.md", "README.md"}
    assert not missing_markdown(doc, "see docs/protocol.md and protocol.md", known, names)
    assert missing_markdown(doc, "the facts in compat" ".md", known, names)
    assert missing_markdown(doc, "see ../../elsewhere/notes" ".md", known, names)
    assert missing_markdown(doc, "see docs/compat" ".md", known, names)
    assert missing_markdown(doc, "in /home/me/compat" ".md", known, names)
    assert not missing_markdown(doc, "https://github.com/o/r/blob/main/NOTES" ".md", known, names)


LINK = re.compile(r"\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    return {slug(line.lstrip("#")) for line in markdown.splitlines() if line.startswith("#")}


def broken_links(path: Path, text: str) -> list[str]:
    """Relative links of a markdown file whose file or heading does not exist."""
    found = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto: ...
        name, _, anchor = target.partition("#")
        linked = (path.parent / name).resolve() if name else path
        if not linked.is_relative_to(ROOT) or not linked.exists():
            found.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked.read_text()):
            found.append(f"{target}: no such heading")
    return found


def test_every_relative_link_in_the_docs_resolves() -> None:
    report = []
    for path, text in text_files().items():
        if path.suffix == ".md":
            report += [f"{path.relative_to(ROOT)}: {entry}" for entry in broken_links(path, text)]
    assert not report, "\n".join(report)


def test_link_checking_sees_a_broken_link() -> None:
    doc = ROOT / "README.md"
    assert not broken_links(doc, "[spec](docs/protocol.md#close-codes)")
    assert broken_links(doc, "[spec](docs/protocol.md#no-such-heading)")
    assert broken_links(doc, "[gone](docs/nowhere" ".md)")
    assert slug("Between instances: Redis") == "between-instances-redis"
    assert slug("`room_update`") == "room_update"
