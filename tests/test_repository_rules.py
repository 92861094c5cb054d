"""The repository stands alone and its parts keep their boundaries.

- Every relative Markdown link in the tracked `*.md` files points at a file of the repository, and every
  `#anchor` at a heading of the target. Anchors follow GitHub's heading slugs (lower-case; punctuation other
  than `-` and `_` dropped; each space a `-`; a repeated slug gets `-1`, `-2`: github/cmark-gfm's
  `extensions/autolink` does not do this, GitHub's renderer does, as documented in GitHub Docs "Basic writing
  and formatting syntax", section "Section links").
- Every repository path cited in backticks (a top-level folder, then a path) exists, or is a build output git
  ignores.
- Every code comment's `docs/architecture.md, decision N` names a decision the document has.
- No file refers to notes outside the repository (a shared folder beside the
  checkout, a design note by its file name).
- The containers (training/, serving/, monitoring/) never import Pulumi, and the program (components/) imports
  from the containers only their small contract modules.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOP_DIRS = (
    "components",
    "training",
    "serving",
    "monitoring",
    "policy",
    "tests",
    "tools",
    "docs",
    "benchmarks",
    "client",
    "examples",
    ".github",
    ".ci",
)
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".cfg", ".ini", ".sh", ""}
CONTAINERS = ("training", "serving", "monitoring")
# The only container modules the Pulumi program may import: names and definitions shared by both sides, each free
# of the containers' heavy dependencies (checked below): metric names, the model directory's file names, and the
# instance facts the settings plan a training job with.
CONTRACT_MODULES = {
    "monitoring.metrics_contract",
    "training.metrics",
    "training.model_files",
    "training.instance_facts",
}

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
CITED_PATH = re.compile(r"`((?:" + "|".join(re.escape(d) for d in TOP_DIRS) + r")/[^`\s]*)`")
DECISION = re.compile(r"docs/architecture\.md, decisions? ([0-9]+)(?:-([0-9]+))?(?: and ([0-9]+))?")
# Spelled in pieces so that this file does not match itself.
OUTSIDE = re.compile(
    "|".join([r"\.\./" + "shared", r"\b" + "DESIGN" + r"(?:\.md| decision|:)", r"CONTAINERS" + r"\.md"])
)


def tracked_files() -> list[Path]:
    command = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    listed = subprocess.run(command, cwd=ROOT, capture_output=True, check=True, text=True)
    return [ROOT / name for name in listed.stdout.split("\0") if name and (ROOT / name).is_file()]


def text_files() -> Iterator[tuple[Path, str]]:
    for path in tracked_files():
        if path.suffix not in TEXT_SUFFIXES or "tests/data" in path.as_posix():
            continue
        try:
            yield path, path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue


def github_slugs(markdown: str) -> set[str]:
    """The anchors GitHub gives a document's headings (fenced code blocks hold no headings)."""
    slugs: set[str] = set()
    seen: dict[str, int] = {}
    in_fence = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        heading = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if in_fence or not heading:
            continue
        text = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", r"\1", heading.group(1)).strip().lower()
        slug = re.sub(r"[^\w\- ]", "", text).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        slugs.add(slug if count == 0 else f"{slug}-{count}")
    slugs.update(re.findall(r"<a (?:id|name)=\"([^\"]+)\"", markdown))
    return slugs


def ignored_by_git(relative: str) -> bool:
    """A build output: git ignores it as a file or as a folder (`policy/venv/`)."""
    return any(
        subprocess.run(["git", "check-ignore", "-q", name], cwd=ROOT, check=False).returncode == 0
        for name in (relative, relative + "/")
    )


def broken_links(markdown_path: Path, markdown: str) -> list[str]:
    broken = []
    for target in LINK.findall(markdown):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: and the like are not checked here
            continue
        file_part, _, anchor = target.partition("#")
        destination = (markdown_path.parent / file_part).resolve() if file_part else markdown_path
        where = f"{markdown_path.relative_to(ROOT)}: ({target})"
        if not destination.exists() or ROOT not in (destination, *destination.parents):
            broken.append(f"{where} points at a missing file")
        elif (
            anchor
            and destination.suffix == ".md"
            and anchor not in github_slugs(destination.read_text(encoding="utf-8"))
        ):
            broken.append(f"{where} names no heading of {destination.relative_to(ROOT)}")
    return broken


def test_github_slugs_follow_githubs_rules() -> None:
    document = "# Quick start\n## 1. Endpoint updates are `checked`\n```\n# not a heading\n```\n## Quick start\n"
    assert github_slugs(document) == {"quick-start", "1-endpoint-updates-are-checked", "quick-start-1"}


def test_broken_link_and_missing_anchor_are_reported(tmp_path: Path) -> None:
    page = ROOT / "docs" / "architecture.md"
    markdown = "[a](missing.md) [b](model-contract.md#no-such-heading) [c](model-contract.md) [d](https://x.y/z)"
    assert broken_links(page, markdown) == [
        "docs/architecture.md: (missing.md) points at a missing file",
        "docs/architecture.md: (model-contract.md#no-such-heading) names no heading of docs/model-contract.md",
    ]


def test_every_relative_markdown_link_and_anchor_resolves() -> None:
    broken = [problem for path, text in text_files() if path.suffix == ".md" for problem in broken_links(path, text)]
    assert broken == []


def test_every_repository_path_cited_in_backticks_exists() -> None:
    missing = []
    for path, text in text_files():
        for number, line in enumerate(text.splitlines(), 1):
            for cited in CITED_PATH.findall(line):
                if any(c in cited for c in "*{}<>$"):  # a pattern, not a path
                    continue
                relative = cited.split("#")[0].split(":")[0].rstrip("/.,")
                if not (ROOT / relative).exists() and not ignored_by_git(relative):
                    missing.append(f"{path.relative_to(ROOT)}:{number}: {cited}")
    assert missing == []


def test_every_cited_architecture_decision_exists() -> None:
    document = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    decisions = {int(n) for n in re.findall(r"^### ([0-9]+)\. ", document, flags=re.MULTILINE)}
    cited: dict[int, list[str]] = {}
    for path, text in text_files():
        for match in DECISION.finditer(text):
            first, last, extra = match.groups()
            numbers = set(range(int(first), int(last or first) + 1)) | ({int(extra)} if extra else set())
            for number in numbers:
                cited.setdefault(number, []).append(str(path.relative_to(ROOT)))
    assert cited, "no code cites docs/architecture.md: the pattern no longer matches the comments"
    assert {n: paths for n, paths in cited.items() if n not in decisions} == {}


def test_no_file_refers_to_notes_outside_the_repository() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path, text in text_files()
        for number, line in enumerate(text.splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert found == []


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("container", CONTAINERS)
def test_container_code_never_imports_pulumi(container: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(m for m in imported_modules(path) if m.split(".")[0].startswith("pulumi"))
        for path in sorted((ROOT / container).rglob("*.py"))
    }
    assert {path: modules for path, modules in offenders.items() if modules} == {}


def container_imports_of(path: Path) -> set[str]:
    """Container modules a program file imports: `from monitoring import x` counts as `monitoring.x`,
    `from training.metrics import X` as `training.metrics`, `import serving.model` as `serving.model`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module in CONTAINERS:
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            else:
                found.add(node.module)
    return {module for module in found if module.split(".")[0] in CONTAINERS}


def test_the_contract_modules_import_only_the_standard_library() -> None:
    """The program imports them at plan time: they must not pull torch, numpy, onnx or another container module."""
    for module in sorted(CONTRACT_MODULES):
        path = ROOT / (module.replace(".", "/") + ".py")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
        assert imported <= set(sys.stdlib_module_names) | {"__future__"}, (module, imported)


def test_program_imports_only_the_containers_contract_modules(tmp_path: Path) -> None:
    program = [ROOT / "__main__.py", *sorted((ROOT / "components").glob("*.py"))]
    used = {str(p.relative_to(ROOT)): container_imports_of(p) for p in program}
    assert {path: mods - CONTRACT_MODULES for path, mods in used.items() if mods - CONTRACT_MODULES} == {}
    # The rule reads imports the way they are written: a module outside the contract is reported.
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import json\nfrom monitoring import metrics_contract, capture\nfrom serving.model import LoadedModel\n"
        "from training.metrics import METRIC_DEFINITIONS\n"
    )
    assert container_imports_of(sample) == {
        "monitoring.metrics_contract",
        "monitoring.capture",
        "serving.model",
        "training.metrics",
    }


README_LIMIT_BYTES = 15 * 1024
README_SECTIONS = (
    "Scope",
    "Prerequisites",
    "Two commands",
    "Deploying for real",
    "First deployment",
    "Teardown",
    "Bringing your own data and model",
    "VPC",
    "Where to go next",
)


def test_readme_stays_short_with_the_sections_a_newcomer_reads_first() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode()) <= README_LIMIT_BYTES
    headings = [h.strip() for h in re.findall(r"^#{2,3} (.+)$", readme, flags=re.MULTILINE)]
    assert [s for s in README_SECTIONS if s not in headings] == []
    # The generated reference tables live in docs/reference.md, not here.
    assert "config-reference:begin" not in readme
    assert "config-reference:begin" in (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
    for command in ("make local", "make test", "pulumi up", "pulumi destroy"):
        assert command in readme
