"""Sources a clone can check: the product cites public URLs, bibliography keys of docs/sources.md, or files in
the repository, never documents that only the authors' workspace holds."""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.9/3.10 only
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "docs" / "sources.md"
FIXTURES = ROOT / "tests" / "fixtures"
TEXT = {".py", ".toml", ".md", ".txt", ".json", ".yml", ".yaml", ".cfg", ".ini", ".sh", ".j2", ".csv", ".log", ""}

# What only the authors' workspace holds: its notes, its reference documents and their numbered sections, and the
# issue tracker of this project (an `owner/repo` before the number makes it another project's public issue).
_OUTSIDE = [
    (re.compile(r"LAB\.md"), "the lab notes"),
    (re.compile(r"\.\./shared\b|\bshared/(?:reference|LAB)"), "the workspace's shared folder"),
    (re.compile(r"\b(?:platforms|failures|peers|style-anchors|design-review)\.md\b"), "a workspace reference"),
    (re.compile(r"\breference/[\w-]+\.(?:md|txt)\b"), "a workspace reference"),
    (re.compile(r"seed-note"), "a workspace note"),
    (re.compile(r"§\s?\d"), "a section of a document that is not in the repository"),
    (re.compile(r"lead'?s part", re.I), "a part of this project's work plan"),
    (re.compile(r"\b(?:this|the) lab\b", re.I), "the lab notes"),
]
_ISSUE = re.compile(r"\bissues?\s+#?\d+", re.I)
_OWNER_REPO = re.compile(r"[\w.-]+/[\w.-]+\s*$")  # `owner/repo issue 12`: another project's issue
_KEY = re.compile(r"\[S(\d+)\]")
_URL = re.compile(r"https?://\S+")
_ENTRY = re.compile(r"^- \[S(\d+)\]")


def _walked() -> Iterator[Path]:
    """The files whose text is the product's own: src, recipes, tests, scripts, deploy, docs and README.md.
    Fixtures are captured or pasted text: only their SOURCES.md and `# source:` header lines are the project's."""
    for top in ("src", "recipes", "tests", "scripts", "deploy", "docs"):
        for path in sorted((ROOT / top).rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts or path.suffix not in TEXT:
                continue
            if path == Path(__file__).resolve():
                continue  # this file names the patterns it looks for
            yield path
    for name in ("README.md", "pyproject.toml"):
        if (ROOT / name).is_file():
            yield ROOT / name


def _lines(path: Path) -> Iterator[Tuple[int, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return
    fixture = FIXTURES in path.parents
    for n, line in enumerate(text.splitlines(), 1):
        if fixture and path.name != "SOURCES.md" and not line.lstrip("#/ ").lower().startswith("source:"):
            continue
        yield n, line


def _outside_refs(line: str) -> List[str]:
    found = [why for pat, why in _OUTSIDE if pat.search(line)]
    for m in _ISSUE.finditer(line):
        if not _OWNER_REPO.search(line[:m.start()]):
            found.append(f"an issue of this project ({m.group(0)!r})")
    return found


def test_no_reference_to_files_outside_the_repository():
    bad = []
    for path in _walked():
        for n, line in _lines(path):
            for why in _outside_refs(line):
                bad.append(f"{path.relative_to(ROOT)}:{n}: {why}: {line.strip()[:120]}")
    assert not bad, "references a clone cannot follow:\n" + "\n".join(bad)


def _bibliography() -> Dict[str, str]:
    """docs/sources.md: `- [Sn] text` entries, each running to the next entry or heading."""
    entries: Dict[str, str] = {}
    key = None
    for line in SOURCES.read_text(encoding="utf-8").splitlines():
        m = _ENTRY.match(line)
        if m:
            key = m.group(1)
            assert key not in entries, f"[S{key}] is listed twice in docs/sources.md"
            entries[key] = line
        elif key is not None and line.startswith(("  ", "\t")):
            entries[key] += " " + line.strip()
        else:
            key = None
    return entries


def test_every_key_resolves_to_a_public_url():
    entries = _bibliography()
    assert entries, "docs/sources.md lists no [Sn] entry"
    for key, text in entries.items():
        assert re.search(r"https://\S+", text), f"[S{key}] in docs/sources.md has no https URL"
    missing = []
    for path in _walked():
        if path == SOURCES:
            continue
        for n, line in _lines(path):
            for m in _KEY.finditer(line):
                if m.group(1) not in entries:
                    missing.append(f"{path.relative_to(ROOT)}:{n}: {m.group(0)}")
    assert not missing, "keys docs/sources.md does not list:\n" + "\n".join(missing)


def _source_values(node, where: str) -> Iterator[Tuple[str, str]]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "source" and isinstance(v, str):
                yield where, v
            else:
                yield from _source_values(v, f"{where}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            label = v.get("id", i) if isinstance(v, dict) else i
            yield from _source_values(v, f"{where}[{label}]")


def _cites_something(value: str) -> bool:
    if _URL.search(value) or _KEY.search(value):
        return True
    for token in re.findall(r"[\w.-]+(?:/[\w.-]+)+", value):
        if (ROOT / token.rstrip(".")).is_file():
            return True
    return False


def test_every_source_row_cites_a_url_a_key_or_a_file():
    files = sorted((ROOT / "recipes").glob("*.toml")) + sorted((ROOT / "src/torch_setup/data").glob("*.toml"))
    assert files
    bad = []
    for path in files:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        for where, value in _source_values(data, path.relative_to(ROOT).as_posix()):
            if not _cites_something(value):
                bad.append(f"{where}: {value[:100]}")
    assert not bad, "source rows with no URL, [Sn] key or repository file:\n" + "\n".join(bad)
