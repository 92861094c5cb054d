"""The Pulumi CLI's config pre-flight (tools/preflight.py): what the CLI refuses, `make plan` refuses, in its words.

Each rule below is the CLI's, read from pulumi/pulumi: `pkg/workspace/config.go` (`mergeConfig`,
`validateStackConfigValues`, `missingStackConfigurationKeysError`; the CLI's own unit test
`TestStackConfigErrorsWhenMissingStackValueForConfigTypeWithNoDefault` in `pkg/workspace/config_project_test.go`
asserts the missing-key message), `sdk/go/common/workspace/project.go` (`Project.Validate`, `ValidateConfigValue`)
and `sdk/go/common/workspace/project.go` `RewriteShorthandConfigValues`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools import plan as plan_cli
from tools.plan import REPO, run_program
from tools.preflight import PreflightError, load_yaml, merge_config, preflight, stack_value

PROJECT = load_yaml(REPO / "Pulumi.yaml")
MINIMAL = {"aws:region": "us-east-1", "mlplatform:owner": "ml-team", "mlplatform:environment": "dev"}


def refusal(config: dict[str, Any], project: dict[str, Any] | None = None, stack: str = "dev") -> str:
    with pytest.raises(PreflightError) as caught:
        merge_config(stack, project or PROJECT, config)
    return str(caught.value)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_committed_stacks_pass_the_cli_config_rules(stack: str) -> None:
    merged = preflight(stack, REPO)
    declared = {k for k in PROJECT["config"]}
    # The CLI writes every declared default into the stack's config: the program sees all of them.
    assert declared <= set(merged.values)
    assert merged.secret_keys == set()


def test_a_project_without_defaults_is_refused_for_every_key_the_stack_leaves_unset() -> None:
    """Today's main declared 89 keys without `default:`; the CLI names every one the stack does not set."""
    bare = copy.deepcopy(PROJECT)
    for declaration in bare["config"].values():
        declaration.pop("default", None)
    stack = yaml.safe_load((REPO / "Pulumi.dev.yaml").read_text())["config"]
    message = refusal(stack, bare)
    assert message.startswith("Stack 'dev' is missing configuration values 'mlplatform:")
    unset = sorted(k for k in bare["config"] if k not in stack)
    assert f"'{unset[-2]}' and '{unset[-1]}'" in message
    assert message.count("'mlplatform:") == len(unset)


def test_one_missing_key_is_named_in_the_singular() -> None:
    assert refusal({"aws:region": "us-east-1", "mlplatform:owner": "x"}) == (
        "Stack 'dev' is missing configuration value 'mlplatform:environment'"
    )


def test_a_minimal_stack_file_setting_only_the_required_keys_plans() -> None:
    merged = merge_config("fresh", PROJECT, MINIMAL)
    assert merged.values["mlplatform:trainingInstanceType"] == "ml.g5.xlarge"
    assert merged.values["mlplatform:trainingSubnetIds"] == "[]"
    assert merged.values["mlplatform:imagesTraining"] == ""
    plan = run_program("fresh", merged.values, secret_keys=merged.secret_keys)
    assert plan.one("aws:sagemaker/endpoint:Endpoint")["inputs"]["name"] == "mlplatform-fresh"
    assert plan.one("aws:sagemaker/trainingJob:TrainingJob")


@pytest.mark.parametrize(
    ("key", "value", "type_name"),
    [
        ("mlplatform:endpointInstanceCount", "four", "integer"),
        ("mlplatform:endpointInstanceCount", 2.5, "integer"),
        ("mlplatform:trainingSpot", "yes", "boolean"),
        ("mlplatform:alarmsEmails", '["a@example.com"]', "array<string>"),
        ("mlplatform:alarmsEmails", [1, 2], "array<string>"),
        ("mlplatform:trainingHyperparameters", '{"epochs": "5"}', "object"),
        ("mlplatform:owner", ["a", "b"], "string"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_as_the_cli_does(key: str, value: Any, type_name: str) -> None:
    expected = f"Stack 'dev' with configuration key '{key}' must be of type '{type_name}'"
    assert refusal({**MINIMAL, key: value}) == expected


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("mlplatform:endpointInstanceCount", 3),
        ("mlplatform:endpointInstanceCount", "+3"),
        ("mlplatform:endpointInstanceCount", 3.0),
        ("mlplatform:trainingSpot", False),
        ("mlplatform:alarmsError4xxRatePercent", 2.5),
        ("mlplatform:owner", 12345),
        ("mlplatform:trainingHyperparameters", {"epochs": 5}),
    ],
)
def test_values_the_cli_accepts_reach_the_program_as_text(key: str, value: Any) -> None:
    merged = merge_config("dev", PROJECT, {**MINIMAL, key: value})
    assert merged.values[key] == stack_value(value).text


def test_yaml_scalars_become_the_text_the_cli_passes() -> None:
    """`object.MarshalString`: scalars become their JSON text (a whole float loses its fraction), maps JSON."""
    assert stack_value(False).text == "false"
    assert stack_value(5.0).text == "5"
    assert stack_value(5.5).text == "5.5"
    assert stack_value({"a": 1}).object
    assert stack_value({"secure": "v1:abc"}).secure


def test_a_stack_file_read_as_yaml_1_2_keeps_yes_a_string(tmp_path: Path) -> None:
    """The CLI's YAML parser reads `yes` as a string, which a boolean key then refuses (PyYAML would say True)."""
    (tmp_path / "Pulumi.yaml").write_text((REPO / "Pulumi.yaml").read_text())
    (tmp_path / "Pulumi.x.yaml").write_text(
        "config:\n  aws:region: us-east-1\n  mlplatform:owner: a\n  mlplatform:environment: dev\n"
        "  mlplatform:trainingSpot: yes\n"
    )
    with pytest.raises(PreflightError, match="'mlplatform:trainingSpot' must be of type 'boolean'"):
        preflight("x", tmp_path)


def test_a_declared_secret_with_a_plaintext_value_is_refused() -> None:
    project = copy.deepcopy(PROJECT)
    project["config"]["mlplatform:kubernetesKubeconfig"] = {"type": "string", "secret": True}
    config = {**MINIMAL, "mlplatform:kubernetesKubeconfig": "apiVersion: v1"}
    assert refusal(config, project) == (
        "Stack 'dev' with configuration key 'mlplatform:kubernetesKubeconfig' must be encrypted as it's secret"
    )
    merged = merge_config("dev", project, {**config, "mlplatform:kubernetesKubeconfig": {"secure": "v1:AAA"}})
    assert merged.secret_keys == {"mlplatform:kubernetesKubeconfig"}
    assert merged.values["mlplatform:kubernetesKubeconfig"] == "[secret]"


def test_a_secret_declared_with_a_default_would_fail_every_stack_so_ours_declares_none() -> None:
    """The secret check runs on defaults the CLI merged in too: `secret: true` plus `default` refuses any stack
    that leaves the key unset. Our kubeconfig key therefore carries a default and no `secret` flag."""
    project = copy.deepcopy(PROJECT)
    project["config"]["mlplatform:kubernetesKubeconfig"]["secret"] = True
    assert "must be encrypted" in refusal(MINIMAL, project)
    assert "secret" not in PROJECT["config"]["mlplatform:kubernetesKubeconfig"]


@pytest.mark.parametrize(
    ("declaration", "message"),
    [
        (
            {"mlplatform:x": {"type": "integer", "default": "ten"}},
            "The default value specified for configuration key 'mlplatform:x' is not of the expected type 'integer'",
        ),
        (
            {"mlplatform:x": {"type": "array", "default": []}},
            "The configuration key 'mlplatform:x' declares an array but does not specify the underlying type via "
            "the 'items' attribute",
        ),
        (
            {"mlplatform:x": {"type": "string", "default": "a", "value": "b"}},
            "project config 'mlplatform:x' cannot have both a 'default' and 'value' attribute",
        ),
        (
            {"aws:region": {"type": "string", "value": "us-east-1"}},
            "Configuration key 'aws:region' is not namespaced by the project and should not define a type",
        ),
        (
            {"aws:region": {"default": "us-east-1"}},
            "Configuration key 'aws:region' is not namespaced by the project and should not define a default value. "
            "Did you mean to use the 'value' attribute instead of 'default'?",
        ),
        ({"mlplatform:x": {"type": "number"}}, "config.mlplatform:x.type: value must be one of"),
    ],
)
def test_a_project_file_the_cli_refuses_is_refused(declaration: dict[str, Any], message: str) -> None:
    project = {"name": "mlplatform", "config": declaration}
    assert refusal({"mlplatform:x": "1"}, project).startswith(message)


def test_a_shorthand_declaration_is_a_default_of_a_project_key() -> None:
    project = {"name": "mlplatform", "config": {"mlplatform:size": "small", "aws:region": "us-west-2"}}
    merged = merge_config("dev", project, {})
    assert merged.values == {"mlplatform:size": "small", "aws:region": "us-west-2"}


def test_make_plan_refuses_a_stack_the_cli_refuses_with_the_cli_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "Pulumi.yaml").write_text((REPO / "Pulumi.yaml").read_text())
    (tmp_path / "Pulumi.bad.yaml").write_text(
        "config:\n  aws:region: us-east-1\n  mlplatform:owner: a\n  mlplatform:environment: dev\n"
        "  mlplatform:endpointInstanceCount: many\n"
    )
    out = tmp_path / "out"
    code = plan_cli.main(["--stack", "bad", "--root", str(tmp_path), "--out", str(out), "--no-validate"])
    assert code == 2
    err = capsys.readouterr().err
    assert "the Pulumi CLI refuses this stack" in err
    assert "Stack 'bad' with configuration key 'mlplatform:endpointInstanceCount' must be of type 'integer'" in err
    assert not (out / "bad.json").exists()
