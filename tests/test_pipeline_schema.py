"""tools/pipeline_schema.py: the stack's pipeline definitions against a pipeline definition JSON schema.

The schemas here are tiny ones written by the tests, shaped like AWS's published one
(aws-sagemaker-mlops/sagemaker-model-building-pipeline-definition-JSON-schema, schema/pipeline-definition.schema.json:
`Version` enum 2020-12-01, `Steps` items a `oneOf` of step definitions told apart by their `Type` enum, each with
`additionalProperties: false`). Validation is the `jsonschema` library's (Validator.iter_errors; an error's
`absolute_path` and, for `oneOf`, its `context` of per-branch errors with `schema_path[0]` the branch index).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from components.pipeline import STEP_TRAIN
from tools.pipeline_schema import load_validator, main, parse_sets, validate_definition

LIFECYCLE = ["--set", "mlplatform:lifecycleEnabled=true"]


def _step(type_name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "Name": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
            "Type": {"enum": [type_name]},
            "Arguments": {"type": "object", "properties": arguments, "additionalProperties": False},
        },
        "required": ["Name", "Type", "Arguments"],
        "additionalProperties": False,
    }


def _schema(step_name_max: int = 64) -> dict[str, Any]:
    """Steps are Processing (any ProcessingResources object) or Fail (ErrorMessage a string) steps."""
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {
            "Version": {"enum": ["2020-12-01"]},
            "Steps": {
                "type": "array",
                "items": {
                    "oneOf": [
                        _step("Processing", {"ProcessingResources": {"type": "object"}}),
                        _step("Fail", {"ErrorMessage": {"type": "string", "maxLength": step_name_max}}),
                    ]
                },
            },
        },
        "required": ["Version", "Steps"],
    }


def _write(tmp_path: Path, schema: dict[str, Any]) -> Path:
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(schema))
    return path


def test_a_valid_definition_has_no_violations(tmp_path: Path) -> None:
    validator = load_validator(_write(tmp_path, _schema()))
    definition = {
        "Version": "2020-12-01",
        "Steps": [
            {"Name": "Train", "Type": "Processing", "Arguments": {"ProcessingResources": {}}},
            {"Name": "Stop", "Type": "Fail", "Arguments": {"ErrorMessage": "gate failed"}},
        ],
    }
    assert validate_definition(validator, definition, "p") == []


def test_violations_are_reported_at_their_path_inside_the_step_the_type_picks(tmp_path: Path) -> None:
    """A bad Fail step is reported inside the Fail branch of `oneOf`, not as "valid under none of the schemas"."""
    validator = load_validator(_write(tmp_path, _schema()))
    definition = {
        "Version": "2019-01-01",
        "Steps": [
            {"Name": "Train", "Type": "Processing", "Arguments": {"ProcessingResources": {}}},
            {"Name": "Stop", "Type": "Fail", "Arguments": {"ErrorMessage": 3, "Extra": True}},
        ],
    }
    found = [(v.path, v.message) for v in validate_definition(validator, definition, "p")]
    assert found == [
        ("$.Steps[1].Arguments", "Additional properties are not allowed ('Extra' was unexpected)"),
        ("$.Steps[1].Arguments.ErrorMessage", "3 is not of type 'string'"),
        ("$.Version", "'2019-01-01' is not one of ['2020-12-01']"),
    ]


def test_the_command_exits_1_and_prints_each_violation_with_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real lifecycle plan against a schema that refuses one step name: one violation, at that step's Name."""
    steps = json.loads(json.dumps(_schema()["properties"]["Steps"]))
    steps["items"] = {"type": "object", "properties": {"Name": {"not": {"const": STEP_TRAIN}}}}
    schema = {**_schema(), "properties": {"Steps": steps}}
    assert main(["--schema", str(_write(tmp_path, schema)), "--stack", "dev", *LIFECYCLE]) == 1
    out, err = capsys.readouterr()
    assert "mlplatform-dev-lifecycle-pipeline: 1 violation(s) of schema.json" in out
    (line,) = err.splitlines()
    assert re.fullmatch(
        rf"schema violation: mlplatform-dev-lifecycle-pipeline: \$\.Steps\[\d+\]\.Name: '{STEP_TRAIN}' should not "
        r"be valid under .*",
        line,
    )


def test_the_command_exits_0_when_every_pipeline_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every pipeline of the plan (lifecycle and monitors) has Version 2020-12-01 and a list of step objects."""
    schema = _schema()
    schema["properties"]["Steps"]["items"] = {"type": "object", "required": ["Name", "Type"]}
    assert main(["--schema", str(_write(tmp_path, schema)), *LIFECYCLE]) == 0
    assert "mlplatform-dev-lifecycle-pipeline: 0 violation(s) of schema.json" in capsys.readouterr().out


def test_an_unknown_draft_or_a_bad_set_names_what_is_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert type(load_validator(_write(tmp_path, _schema()))).__name__ == "Draft7Validator"  # as declared
    schema = {**_schema(), "$schema": "http://example.com/my-draft#"}
    assert main(["--schema", str(_write(tmp_path, schema)), *LIFECYCLE]) == 2
    assert "declares $schema 'http://example.com/my-draft#'" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"--set 'lifecycleEnabled': expected key=value"):
        parse_sets(["lifecycleEnabled"])
    assert parse_sets(["lifecycleEnabled=true", "aws:region=eu-west-1"]) == {
        "mlplatform:lifecycleEnabled": "true",
        "aws:region": "eu-west-1",
    }


def test_members_botocore_has_but_the_schema_refuses_carry_the_botocore_evidence(tmp_path: Path) -> None:
    """A Training step's Arguments are a CreateTrainingJob request (tools/validate.py's step table): botocore's
    OutputDataConfig shape has CompressionType (GZIP | NONE), so a schema without it is behind the API; a member
    botocore lacks as well gets no such note."""
    schema = _schema()
    training = _step(
        "Training",
        {"OutputDataConfig": {"type": "object", "properties": {"S3OutputPath": {}}, "additionalProperties": False}},
    )
    schema["properties"]["Steps"]["items"]["oneOf"].append(training)
    validator = load_validator(_write(tmp_path, schema))
    config = {"S3OutputPath": "s3://b/models/", "CompressionType": "NONE", "Bogus": 1}
    definition = {
        "Version": "2020-12-01",
        "Steps": [{"Name": "Train", "Type": "Training", "Arguments": {"OutputDataConfig": config}}],
    }
    (violation,) = validate_definition(validator, definition, "p")
    assert violation.path == "$.Steps[0].Arguments.OutputDataConfig"
    assert violation.botocore == ""  # Bogus is in neither
    del config["Bogus"]
    (violation,) = validate_definition(validator, definition, "p")
    assert violation.botocore == "botocore's sagemaker CreateTrainingJob OutputDataConfig has CompressionType"
    assert str(violation).endswith("('CompressionType' was unexpected) [" + violation.botocore + "]")
