"""Check the stack's SageMaker Pipeline definitions against AWS's published pipeline definition JSON schema.

`python -m tools.pipeline_schema --schema PATH [--stack dev] [--set key=value ...]` plans the stack offline
(the mock runtime, as tools/plan.py) with the `--set` config values on top of `Pulumi.<stack>.yaml`, reads every
`aws:sagemaker/pipeline:Pipeline` resource's `pipelineDefinition`, and validates it against the schema file with the
`jsonschema` library. Every violation is printed with its JSON path inside the definition; the exit status is 1 if
there is one, 2 if the schema or the config cannot be used, 0 otherwise.

The schema is not part of this repository: it lives in AWS's repository
https://github.com/aws-sagemaker-mlops/sagemaker-model-building-pipeline-definition-JSON-schema
(`schema/pipeline-definition.schema.json`); docs/lifecycle.md says how to get it and what it disagrees with.
This check comes on top of tools/validate.py, which checks each step's Arguments against botocore's models.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.plan import add_set_argument, parse_sets

PIPELINE_TYPE = "aws:sagemaker/pipeline:Pipeline"

# `$schema` values naming no particular draft. JSON Schema's core spec (draft 4 onwards) describes the
# unversioned `http://json-schema.org/schema#` as "the latest version"; the latest jsonschema implements is
# 2020-12. AWS's pipeline schema declares exactly this URI and uses only keywords (`$id`, `definitions`, `$ref`
# without siblings, `oneOf`, `anyOf`, `patternProperties`, `enum`, ...) that validate the same way in drafts 6,
# 7 and 2020-12, so the choice does not change its results.
_UNVERSIONED = {"http://json-schema.org/schema#", "http://json-schema.org/schema", "https://json-schema.org/schema"}


@dataclass(frozen=True)
class Violation:
    """One place where a pipeline definition breaks the schema."""

    pipeline: str
    """Name of the Pulumi resource whose `pipelineDefinition` it is."""
    path: str
    """JSON path inside the definition, e.g. `$.Steps[2].Arguments.ProcessingResources`."""
    message: str
    """What the schema says is wrong there."""
    botocore: str = ""
    """Set where the schema refuses members that botocore's model of the step's API request has: the evidence
    that the schema, not the definition, is behind the API."""

    def __str__(self) -> str:
        note = f" [{self.botocore}]" if self.botocore else ""
        return f"{self.pipeline}: {self.path}: {self.message}{note}"


def _meta_id(cls: Any) -> str:
    meta = cls.META_SCHEMA
    return str(meta.get("$id", meta.get("id", ""))).rstrip("#")


def _drafts() -> tuple[Any, ...]:
    import jsonschema

    return (
        jsonschema.Draft3Validator,
        jsonschema.Draft4Validator,
        jsonschema.Draft6Validator,
        jsonschema.Draft7Validator,
        jsonschema.Draft201909Validator,
        jsonschema.Draft202012Validator,
    )


def load_validator(schema_path: Path) -> Any:
    """A validator for the schema file, of the draft its `$schema` declares. Raises ValueError if unusable."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        schema = json.loads(schema_path.read_text())
    except OSError as exc:
        raise ValueError(f"cannot read the schema {schema_path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"the schema {schema_path} is not JSON: {exc}") from exc
    if not isinstance(schema, dict):
        raise ValueError(f"the schema {schema_path} is not a JSON object")
    declared = schema.get("$schema")
    if declared is None or declared in _UNVERSIONED:
        cls: Any = Draft202012Validator
    else:
        known = {_meta_id(c): c for c in _drafts()}
        cls = known.get(str(declared).rstrip("#"))
        if cls is None:
            raise ValueError(
                f"the schema {schema_path} declares $schema {declared!r}, a draft jsonschema does not know; "
                "allowed: " + ", ".join(sorted(known)) + " or the unversioned json-schema.org/schema URI"
            )
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        raise ValueError(f"the schema {schema_path} is not a valid {cls.__name__} schema: {exc.message}") from exc
    return cls(schema)


def json_path(parts: Iterable[str | int]) -> str:
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _branch_errors(error: Any) -> list[Any]:
    """The errors to show for a failed `oneOf`/`anyOf`: those of the branch meant for this value.

    Pipeline steps, parameters and conditions carry a `Type` field that picks their branch (`Training`,
    `Processing`, ...). A branch that failed only elsewhere than on `Type` is the one the value was written for;
    its errors say what is wrong. Failing that, jsonschema's best match.
    """
    from jsonschema.exceptions import best_match

    by_branch: dict[Any, list[Any]] = {}
    for sub in error.context:
        by_branch.setdefault(sub.schema_path[0], []).append(sub)
    depth = len(error.absolute_path)
    matching = [
        errors
        for errors in by_branch.values()
        if not any(_rules_out_branch(list(e.absolute_path)[depth:], e.validator) for e in errors)
    ]
    if len(matching) == 1:
        return matching[0]
    best = best_match(error.context)
    return [best] if best is not None else []


def _rules_out_branch(relative_path: list[Any], validator: str) -> bool:
    """Whether an error says the value is not of the branch's kind at all (another `Type`, not an object)."""
    return relative_path == ["Type"] or (not relative_path and validator in ("type", "enum", "const"))


def _leaves(error: Any) -> Iterator[Any]:
    if error.validator in ("oneOf", "anyOf") and error.context:
        chosen = _branch_errors(error)
        if chosen:
            for sub in chosen:
                yield from _leaves(sub)
            return
    yield error


def _unexpected(error: Any) -> list[str]:
    """The members an `additionalProperties: false` error refuses."""
    if error.validator != "additionalProperties" or not isinstance(error.instance, dict):
        return []
    known = error.schema.get("properties", {})
    patterns = [re.compile(p) for p in error.schema.get("patternProperties", {})]
    return sorted(k for k in error.instance if k not in known and not any(p.search(k) for p in patterns))


def botocore_evidence(definition: Any, path: list[str | int], names: list[str]) -> str:
    """Whether botocore's model of the step's API request has the members the schema refused at `path`.

    The step is the innermost object on the path with a `Type` and `Arguments`; its Arguments are the request of
    the call its type makes (the table tools/validate.py checks them with). Returns "" where botocore lacks one.
    """
    from tools.aws_models import input_shape, list_member, members
    from tools.validate import _STEP_REQUESTS  # pyright: ignore[reportPrivateUsage]

    if not names:
        return ""
    node: Any = definition
    start: int | None = None
    operation = ""
    for i, part in enumerate(path):
        if isinstance(node, dict) and part == "Arguments" and str(node.get("Type")) in _STEP_REQUESTS:
            start, operation = i + 1, _STEP_REQUESTS[str(node["Type"])][0]
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return ""
    if start is None:
        return ""
    shape: Any = input_shape("sagemaker", operation)
    for part in path[start:]:
        if isinstance(part, int) and shape.type_name == "list":
            shape = list_member(shape)
        elif isinstance(part, str) and part in members(shape):
            shape = members(shape)[part]
        else:
            return ""
    if shape.type_name != "structure" or not all(n in members(shape) for n in names):
        return ""
    return f"botocore's sagemaker {operation} {shape.name} has {', '.join(names)}"


def validate_definition(validator: Any, definition: Any, pipeline: str) -> list[Violation]:
    """Every violation of the schema in one pipeline definition (parsed JSON), sorted by path."""
    found: list[Violation] = []
    for error in validator.iter_errors(definition):
        for leaf in _leaves(error):
            path = list(leaf.absolute_path)
            evidence = botocore_evidence(definition, path, _unexpected(leaf))
            found.append(Violation(pipeline, json_path(path), leaf.message, evidence))
    return sorted(set(found), key=lambda v: (v.path, v.message))


def pipeline_definitions(plan: Any) -> list[tuple[str, Any]]:
    """(resource name, parsed definition) of each pipeline in a plan (tools.plan.Plan)."""
    out: list[tuple[str, Any]] = []
    for resource in plan.of_type(PIPELINE_TYPE):
        raw = resource["inputs"].get("pipelineDefinition")
        out.append((resource["name"], json.loads(raw) if isinstance(raw, str) else raw))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--schema", type=Path, required=True, help="AWS's pipeline-definition.schema.json")
    parser.add_argument("--stack", default="dev", help="stack whose Pulumi.<stack>.yaml to plan (default: dev)")
    add_set_argument(parser)
    args = parser.parse_args(argv)
    try:
        validator = load_validator(args.schema)
        changes = parse_sets(args.sets)
    except ValueError as exc:
        print(f"pipeline schema check failed: {exc}", file=sys.stderr)
        return 2

    from components.settings import SettingsError
    from tools.example_outputs import example_stack_outputs
    from tools.plan import run_program, stack_config

    try:
        config = stack_config(args.stack)
        config.update(changes)
        plan = run_program(args.stack, config, stack_outputs=example_stack_outputs())
    except (SettingsError, ValueError, FileNotFoundError) as exc:
        print(f"pipeline schema check failed: the stack does not plan: {exc}", file=sys.stderr)
        return 2

    definitions = pipeline_definitions(plan)
    if not definitions:
        print(
            f"no {PIPELINE_TYPE} in the {args.stack} plan: enable one, e.g. --set mlplatform:lifecycleEnabled=true "
            "or --set mlplatform:batchEnabled=true",
            file=sys.stderr,
        )
        return 2
    violations: list[Violation] = []
    for name, definition in definitions:
        found = validate_definition(validator, definition, name)
        violations.extend(found)
        print(f"{name}: {len(found)} violation(s) of {args.schema.name}")
    for violation in violations:
        print(f"schema violation: {violation}", file=sys.stderr)
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
