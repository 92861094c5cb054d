"""Reproducible installs: every environment installs from a lock with hashes that matches the pins people edit.

The `*.in` files hold the pins; `make lock` compiles each into the `*.txt` beside it with
`uv pip compile --generate-hashes`. pip enters hash-checking mode as soon as one requirement carries a
`--hash` option, and then refuses any requirement without one and any file whose sha256 is not listed (pip
documentation, "Secure installs" / "Hash-checking mode"), so a lock must hash every line. The dev lock may carry
torch's CPU build (`2.13.0+cpu`) for a `torch==2.13.0` pin: PEP 440 "Version matching" says `==` ignores the
local label of a candidate when the pin has none.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Each hand-edited pin file and the lock compiled from it.
LOCKS = {
    "requirements.in": "requirements.txt",
    "requirements-dev.in": "requirements-dev.txt",
    "serving/requirements.in": "serving/requirements.txt",
    "monitoring/requirements.in": "monitoring/requirements.txt",
    "policy/requirements.in": "policy/requirements.txt",
    "policy/checkov-requirements.in": "policy/checkov-requirements.txt",
    "training/requirements.txt": "training/requirements.lock",
}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def normalized(name: str) -> str:
    """PEP 503 name normalization: runs of `-`, `_` and `.` become one `-`, lower case."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    """`name==version` pins of a requirements file, following `-r` includes."""
    found: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            found.update(pins(path.parent / line[3:].strip()))
        elif match := PIN.match(line):
            found[normalized(match.group(1))] = match.group(2)
    return found


def locked(path: Path) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) of a lock written by `uv pip compile --generate-hashes`."""
    entries: dict[str, tuple[str, int]] = {}
    current = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if match := PIN.match(line):
            current = normalized(match.group(1))
            entries[current] = (match.group(2), 0)
        elif current and line.strip().startswith("--hash=sha256:"):
            version, count = entries[current]
            entries[current] = (version, count + 1)
        elif line and not line.startswith((" ", "#")):
            current = None
    return entries


def public(version: str) -> str:
    return version.split("+", 1)[0]


@pytest.mark.parametrize(("source", "lock"), sorted(LOCKS.items()))
def test_lock_holds_every_pin_at_its_version(source: str, lock: str) -> None:
    wanted = pins(ROOT / source)
    have = locked(ROOT / lock)
    assert wanted, f"{source} pins nothing"
    mismatched = {
        name: (version, have.get(name, ("missing", 0))[0])
        for name, version in wanted.items()
        if name not in have or public(have[name][0]) != version
    }
    assert mismatched == {}, f"{lock} is out of date with {source}: run `make lock`"


@pytest.mark.parametrize("lock", sorted(LOCKS.values()))
def test_every_locked_requirement_carries_a_hash(lock: str) -> None:
    entries = locked(ROOT / lock)
    assert entries
    assert {name: version for name, (version, count) in entries.items() if count == 0} == {}
    assert "make lock" in (ROOT / lock).read_text(encoding="utf-8").splitlines()[1]


def test_dev_lock_takes_torch_cpu_build_and_no_cuda_wheels() -> None:
    dev = locked(ROOT / "requirements-dev.txt")
    assert dev["torch"][0] == "2.13.0+cpu"
    assert sorted(name for name in dev if name.startswith(("nvidia-", "cuda-")) or name == "triton") == []


def test_lock_parser_reads_versions_and_hashes(tmp_path: Path) -> None:
    lock = tmp_path / "x.txt"
    lock.write_text(
        "# header\n#    make lock\nMarkupSafe==3.0.4 \\\n    --hash=sha256:aa \\\n    --hash=sha256:bb\n"
        "    # via jinja2\nnumpy==2.4.6\n    # via -r x.in\n"
    )
    assert locked(lock) == {"markupsafe": ("3.0.4", 2), "numpy": ("2.4.6", 0)}


def test_unused_pins_are_gone() -> None:
    """httpx was pinned for a test client nothing uses; no Python file imports it."""
    assert "httpx" not in pins(ROOT / "requirements-dev.in")
    importers = subprocess.run(
        ["git", "grep", "-l", "-E", r"^\s*(import|from) httpx", "--", "*.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert importers.stdout == ""


def test_pytest_timeout_is_configured_for_every_test() -> None:
    options = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["pytest"]["ini_options"]
    assert int(options["timeout"]) > 0


def test_a_hung_test_fails_with_a_timeout_instead_of_stalling(tmp_path: Path) -> None:
    """pytest-timeout's own `timeout` ini option, lowered for this run, ends a test blocked in a subprocess."""
    (tmp_path / "test_hang.py").write_text(
        "import subprocess, sys\n\ndef test_hangs():\n"
        "    subprocess.run([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "timeout", "-o", "timeout=2", str(tmp_path / "test_hang.py")],
        cwd=tmp_path,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stdout
    assert "Timeout" in result.stdout
    assert "1 failed" in result.stdout


def test_container_tests_get_the_longer_timeout_and_others_the_default() -> None:
    from tests.conftest import CONTAINERS_TIMEOUT_S

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "tests/test_local_lifecycle.py::test_containers_option_runs_the_same_lifecycle_in_the_images",
            "tests/test_dependencies.py::test_pytest_timeout_is_configured_for_every_test",
            "-p",
            "tests.timeout_probe",
        ],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    limits = dict(re.findall(r"^TIMEOUT (\S+) (\S+)$", result.stdout, flags=re.MULTILINE))
    assert limits == {
        "tests/test_local_lifecycle.py::test_containers_option_runs_the_same_lifecycle_in_the_images": str(
            CONTAINERS_TIMEOUT_S
        ),
        "tests/test_dependencies.py::test_pytest_timeout_is_configured_for_every_test": "default",
    }


def test_dependabot_config_is_valid_and_covers_every_manifest() -> None:
    """Schema: check-jsonschema's vendored `vendor.dependabot` (SchemaStore's dependabot-2.0 schema)."""
    import shutil

    import yaml

    config = ROOT / ".github" / "dependabot.yml"
    checker = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    assert checker, "check-jsonschema comes with requirements-dev.txt"
    result = subprocess.run(
        [checker, "--builtin-schema", "vendor.dependabot", str(config)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    covered: dict[str, set[str]] = {}
    for update in yaml.safe_load(config.read_text(encoding="utf-8"))["updates"]:
        for directory in update.get("directories", [update.get("directory")]):
            covered.setdefault(update["package-ecosystem"], set()).add(directory)
    manifests = {"/" + str(Path(source).parent).replace(".", "").strip("/") for source in LOCKS}
    dockerfiles = {"/" + str(p.parent.relative_to(ROOT)) for p in ROOT.glob("*/Dockerfile")}
    assert manifests - covered["pip"] == set()
    assert dockerfiles - covered["docker"] == set()
