"""The Pulumi CLI's configuration pre-flight, run by `make plan` before the program, with the CLI's own messages.

`pulumi preview` and `pulumi up` check the project file and merge its config declarations into the stack's config
before the program runs; a stack the CLI refuses never reaches our settings. This module does the same, offline,
so `make plan` refuses what the CLI refuses and passes the program exactly the config the CLI would pass.

Modelled on pulumi/pulumi (read at v3.260; the rules are unchanged since typed project config arrived):
- `sdk/go/common/workspace/project.go`, `Project.Validate`: a declaration may not have both `default` and
  `value`; a typed array needs `items`; a default must match its declared type; keys of other namespaces carry
  no type and no default, only a `value`. `ValidateConfigValue` and `InferFullTypeName` decide type matches.
- `pkg/workspace/config.go`, `mergeConfig`: every declared key of the project namespace without a default or a
  value must be set by the stack, or the CLI fails with "Stack 'dev' is missing configuration value(s) ...";
  defaults are then written into the stack's config (`createConfigValue`: scalars as text, lists and maps as
  JSON objects). `validateStackConfigValues` then checks, in key order, that a key declared `secret` holds a
  secure value and that each value of a typed key matches its type ("... must be of type 'integer'").
- `sdk/go/common/resource/config/object.go`, `MarshalString`: a stack file's YAML scalars become text (a bool
  `false` -> "false", a number -> its JSON text); lists and maps become JSON object values.
- `sdk/python/cmd/pulumi-language-python-exec`: the program receives the merged config as strings, plus the list
  of keys that are secret (`pulumi.runtime.config.set_all_config(config, secret_keys)`).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

TYPE_NAMES = ("string", "integer", "boolean", "array", "object")
"""The `type` values Pulumi.yaml's schema allows for a config declaration (project.json, SimpleConfigType)."""
SECRET_PLACEHOLDER = "[secret]"
"""What the offline plan passes for a secure value: only the real CLI can decrypt the ciphertext."""
_GO_ATOI = re.compile(r"^[+-]?[0-9]+$")


class PreflightError(ValueError):
    """The CLI would refuse this project or stack before running the program; the message is the CLI's."""


@dataclass(frozen=True)
class StackValue:
    """One stack config value as the CLI holds it: its text, whether it is a secret, whether it is JSON."""

    text: str
    secure: bool = False
    object: bool = False


@dataclass
class MergedConfig:
    """What the program receives: every key as a string, and which keys are secrets."""

    values: dict[str, str]
    secret_keys: set[str] = field(default_factory=set)


class _Yaml12Loader(yaml.SafeLoader):
    """YAML as the CLI's parser reads it: only `true`/`false` are booleans (YAML 1.2), not `yes`/`on`/`off`."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _first in "tTfF":
    _Yaml12Loader.yaml_implicit_resolvers.setdefault(_first, []).append(
        ("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"))
    )


def load_yaml(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=_Yaml12Loader)  # a SafeLoader subclass


def _json_text(value: Any) -> str:
    """Go's encoding/json text of a scalar: whole floats print without a fraction (`5.0` -> `5`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isfinite(value) and value == int(value) and abs(value) < 1e21:
        return str(int(value))
    return json.dumps(value)


def stack_value(raw: Any) -> StackValue:
    """A value of a stack file's `config:` map, as `config.Value` holds it after unmarshalling."""
    if isinstance(raw, dict) and set(raw) == {"secure"}:
        return StackValue(str(raw["secure"]), secure=True)
    if isinstance(raw, str):
        return StackValue(raw)
    if raw is None or isinstance(raw, bool | int | float):
        return StackValue("" if raw is None else _json_text(raw))
    secure = "secure" in json.dumps(raw)  # a list or map holding a secure value is a secure object
    return StackValue(json.dumps(raw, separators=(",", ":")), secure=secure, object=True)


def _default_value(default: Any) -> StackValue:
    """`createConfigValue`: string, int and bool as text (`%v`); anything else as a JSON object value."""
    if isinstance(default, bool):
        return StackValue("true" if default else "false")
    if isinstance(default, str | int):
        return StackValue(str(default))
    return StackValue(json.dumps(default, separators=(",", ":")), object=True)


def full_type_name(declaration: dict[str, Any]) -> str:
    """`InferFullTypeName`: `array<string>` for an array of strings, else the type."""

    def infer(type_name: str, items: dict[str, Any] | None) -> str:
        if items is not None:
            return f"array<{infer(str(items.get('type', '')), items.get('items'))}>"
        return type_name

    return infer(str(declaration.get("type", "")), declaration.get("items"))


def value_matches(type_name: str, items: dict[str, Any] | None, value: Any) -> bool:
    """`ValidateConfigValue`: does a (decoded) value fit the declared type?"""
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "integer":
        if isinstance(value, int) and not isinstance(value, bool):
            return True
        if isinstance(value, float):
            return value == math.trunc(value)
        return isinstance(value, str) and bool(_GO_ATOI.match(value)) and -(2**63) <= int(value) < 2**63
    if type_name == "boolean":
        return value in ("true", "false") or isinstance(value, bool)
    if type_name == "object":
        return isinstance(value, dict)
    if not isinstance(value, list) or items is None:
        return False
    return all(value_matches(str(items.get("type", "")), items.get("items"), item) for item in value)


def _project_namespaced(project_name: str, key: str) -> bool:
    return ":" not in key or key.startswith(f"{project_name}:")


def declarations(project: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The `config:` block with `RewriteShorthandConfigValues` applied: `key: v` is a default of a project key and
    a `value` of another namespace's key."""
    name = str(project.get("name", ""))
    result: dict[str, dict[str, Any]] = {}
    for key, declaration in (project.get("config") or {}).items():
        if isinstance(declaration, dict):
            result[key] = declaration
        else:
            result[key] = {"default" if _project_namespaced(name, key) else "value": declaration}
    return result


def validate_project(project: dict[str, Any]) -> None:
    """`Project.Validate` over the `config:` declarations, plus the schema's rule on `type` values."""
    name = project.get("name")
    if not name:
        raise PreflightError("project is missing a 'name' attribute")
    for key, declaration in declarations(project).items():
        if "default" in declaration and "value" in declaration:
            raise PreflightError(f"project config '{key}' cannot have both a 'default' and 'value' attribute")
        type_name = declaration.get("type")
        if type_name is not None and type_name not in TYPE_NAMES:
            raise PreflightError(f"config.{key}.type: value must be one of {', '.join(map(repr, TYPE_NAMES))}")
        if _project_namespaced(str(name), key):
            if type_name == "array" and declaration.get("items") is None:
                raise PreflightError(
                    f"The configuration key '{key}' declares an array but does not specify the underlying type via "
                    "the 'items' attribute"
                )
            default = declaration.get("default")
            if (
                type_name is not None
                and default is not None
                and not value_matches(type_name, declaration.get("items"), default)
            ):
                raise PreflightError(
                    f"The default value specified for configuration key '{key}' is not of the expected type "
                    f"'{full_type_name(declaration)}'"
                )
        else:
            if type_name is not None:
                raise PreflightError(
                    f"Configuration key '{key}' is not namespaced by the project and should not define a type"
                )
            if declaration.get("default") is not None:
                raise PreflightError(
                    f"Configuration key '{key}' is not namespaced by the project and should not define a default "
                    "value. Did you mean to use the 'value' attribute instead of 'default'?"
                )
            if declaration.get("value") is None:
                raise PreflightError(f"Configuration key '{key}' is namespaced and must provide an attribute 'value'")


def _missing_keys_error(stack: str, keys: list[str]) -> PreflightError:
    """`missingStackConfigurationKeysError` with `formatMissingKeys`' wording."""
    if len(keys) == 1:
        return PreflightError(f"Stack '{stack}' is missing configuration value '{keys[0]}'")
    keys = sorted(keys)
    listed = ", ".join(f"'{k}'" for k in keys[:-2])
    listed = f"{listed}, " if listed else ""
    listed += f"'{keys[-2]}' and '{keys[-1]}'"
    return PreflightError(f"Stack '{stack}' is missing configuration values {listed}")


def _namespaced(project_name: str, key: str) -> str:
    return key if ":" in key else f"{project_name}:{key}"


def merge_config(stack: str, project: dict[str, Any], stack_config: dict[str, Any]) -> MergedConfig:
    """`mergeConfig` + `validateStackConfigValues`: refuse what the CLI refuses, else the program's config."""
    validate_project(project)
    project_name = str(project["name"])
    values = {_namespaced(project_name, k): stack_value(v) for k, v in (stack_config or {}).items()}
    declared = declarations(project)

    missing: list[str] = []
    for key in sorted(declared):
        declaration = declared[key]
        full = _namespaced(project_name, key)
        has_default = declaration.get("default") is not None
        has_value = declaration.get("value") is not None
        if full not in values and not has_value and not has_default and full.startswith(f"{project_name}:"):
            missing.append(key)
            continue
        if full not in values and (has_value or has_default):
            values[full] = _default_value(declaration["default"] if has_default else declaration["value"])
    if missing:
        raise _missing_keys_error(stack, missing)

    for key in sorted(declared):
        declaration = declared[key]
        if declaration.get("type") is None:
            continue  # only explicitly typed declarations are checked, the secret rule included
        value = values.get(_namespaced(project_name, key), StackValue(""))
        if declaration.get("secret") and not value.secure:
            raise PreflightError(f"Stack '{stack}' with configuration key '{key}' must be encrypted as it's secret")
        if value.secure:
            continue  # the CLI decrypts and checks the plaintext; offline we cannot
        content: Any = json.loads(value.text) if value.object else value.text
        if not value_matches(str(declaration["type"]), declaration.get("items"), content):
            raise PreflightError(
                f"Stack '{stack}' with configuration key '{key}' must be of type '{full_type_name(declaration)}'"
            )

    return MergedConfig(
        values={k: SECRET_PLACEHOLDER if v.secure else v.text for k, v in values.items()},
        secret_keys={k for k, v in values.items() if v.secure},
    )


def preflight(stack: str, root: Path) -> MergedConfig:
    """Read `Pulumi.yaml` and `Pulumi.<stack>.yaml` under `root` and run the CLI's pre-flight on them."""
    stack_file = root / f"Pulumi.{stack}.yaml"
    if not stack_file.exists():
        raise FileNotFoundError(
            f"no stack file {stack_file.name}: stacks are the Pulumi.<stack>.yaml files beside Pulumi.yaml"
        )
    project = load_yaml(root / "Pulumi.yaml") or {}
    data = load_yaml(stack_file) or {}
    return merge_config(stack, project, data.get("config") or {})
