"""docs/reference.md's configuration, outputs and policy tables and Pulumi.yaml's declarations are generated
from the code."""

from __future__ import annotations

import yaml

from components.settings import all_keys
from tools import config_reference
from tools.plan import REPO


def test_readme_and_pulumi_yaml_match_the_settings_definitions() -> None:
    assert config_reference.main(["--check"]) == 0


def test_every_setting_is_declared_in_pulumi_yaml_with_a_description() -> None:
    declared = yaml.safe_load((REPO / "Pulumi.yaml").read_text())["config"]
    assert set(declared) == {f"mlplatform:{k}" for k in all_keys()}
    assert all(
        d["description"] and d["type"] in {"string", "integer", "boolean", "array", "object"} for d in declared.values()
    )


def test_only_the_required_keys_are_declared_without_a_default() -> None:
    """The CLI refuses a stack lacking any declared project key that has no default (pkg/workspace/config.go,
    mergeConfig): only the keys every stack must set may go without one."""
    declared = yaml.safe_load((REPO / "Pulumi.yaml").read_text())["config"]
    required = sorted(k for k, d in declared.items() if "default" not in d)
    assert required == ["mlplatform:environment", "mlplatform:owner"]


def test_every_setting_has_a_docstring() -> None:
    rows = config_reference.settings_rows()
    assert [r["key"] for r in rows if not r["doc"]] == []


def test_stack_files_use_only_declared_keys() -> None:
    declared = set(yaml.safe_load((REPO / "Pulumi.yaml").read_text())["config"])
    for stack in ("dev", "prod"):
        keys = set(yaml.safe_load((REPO / f"Pulumi.{stack}.yaml").read_text())["config"])
        assert {k for k in keys if k.startswith("mlplatform:")} <= declared
