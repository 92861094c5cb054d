"""Where each Pulumi resource's inputs go in AWS's own API models: the one mapping module of the plan validator.

`tools.validate` checks every input of a planned resource against the request shape of the AWS API call the
provider makes with it, as described by the service models that ship with botocore (required members, types,
enums, min/max, lengths, patterns). This module holds what that needs and nothing else:

- `MAPPINGS`: per Pulumi type token, the botocore service and operation, and the few Pulumi input names that
  do not match their AWS member by name (`fields`), inputs the provider never sends to AWS (`ignored`, with the
  reason), AWS-required members that the provider fills itself (`provided`), IAM policy documents to audit
  (`policies`), other JSON documents (`documents`), and rules AWS documents but its models do not encode
  (`rules`; `SHAPE_RULES` for formats such as bucket names and KMS key references, wherever the shape appears).
- `pulumi_schema`: the input tree of a Pulumi type, read from the installed SDK's typed `*Args` classes, so tests
  prove that every input the SDK can send (not only those in today's plan) lands on an AWS member or is ignored
  for a stated reason.
- `member_for` / `resolve_child`: the name matching (camelCase to PascalCase, case-insensitive, plural list names
  to AWS's singular ones) that makes most inputs map without an entry.
- `compile_pattern`: botocore's patterns are Java regular expressions; this turns them into Python ones.

Pulumi paths are dotted camelCase input names; `[]` marks list items and `{}` map values, e.g.
`rules[].expiration.days` or `primaryContainer.environment{}`.

Why botocore's models rather than CloudFormation's resource schemas (as cfn-lint packages them): they describe
the very calls the provider makes (Pulumi's AWS resources are thin wrappers of those calls), they cover every
type here (CloudFormation has no SageMaker TrainingJob, and folds the S3 bucket sub-resources into one Bucket),
and for the SageMaker calls that make most of this program they carry more constraints (CreateTrainingJob: 99
ranges, 63 patterns, 20 enums; CreateModel: 46/36/15 against the Model schema's 26/18/11). The two constraints
found only in CloudFormation's schemas that matter here (KMS's 7-30 day deletion window, S3 bucket names) are
`rules`/`SHAPE_RULES` below, each citing its source.
"""

from __future__ import annotations

import importlib
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import botocore.session
from botocore.model import OperationModel, ServiceModel, Shape, StructureShape

# --- AWS service models ---------------------------------------------------------------------------------------


@cache
def _session() -> botocore.session.Session:
    return botocore.session.get_session()


@cache
def service_model(service: str) -> ServiceModel:
    """botocore's model of one AWS service API (loaded once, from the files botocore ships)."""
    return _session().get_service_model(service)


def operation(service: str, name: str) -> OperationModel:
    return service_model(service).operation_model(name)


def input_shape(service: str, op: str) -> StructureShape:
    shape = operation(service, op).input_shape
    if not isinstance(shape, StructureShape):
        raise TypeError(f"{service}.{op} has no request structure")
    return shape


# botocore types its lazily computed shape attributes loosely; these accessors give them their real types.
def members(shape: Shape) -> Mapping[str, Shape]:
    return typing.cast("Mapping[str, Shape]", getattr(shape, "members", {}))


def required_members(shape: Shape) -> list[str]:
    return list(getattr(shape, "required_members", []))


def metadata(shape: Shape) -> Mapping[str, Any]:
    return typing.cast("Mapping[str, Any]", getattr(shape, "metadata", {}))


def enum_values(shape: Shape) -> list[str]:
    return list(getattr(shape, "enum", None) or [])


def list_member(shape: Shape) -> Shape:
    return typing.cast(Shape, shape.member)  # type: ignore[attr-defined]


def map_key(shape: Shape) -> Shape:
    return typing.cast(Shape, shape.key)  # type: ignore[attr-defined]


def map_value(shape: Shape) -> Shape:
    return typing.cast(Shape, shape.value)  # type: ignore[attr-defined]


def normalize(name: str) -> str:
    """`kmsMasterKeyId`, `KMSMasterKeyID` and `kms_master_key_id` all become `kmsmasterkeyid`."""
    return name.replace("_", "").replace("-", "").lower()


def member_for(shape: StructureShape, key: str, renames: Mapping[str, str] | None = None) -> str | None:
    """The AWS member of `shape` that the Pulumi input `key` fills, or None when nothing matches by name.

    Pulumi names lists in the plural where AWS uses the singular (`inputDataConfigs` -> `InputDataConfig`).
    """
    if renames and key in renames:
        target = renames[key]
        return target if target in members(shape) else None
    by_norm = {normalize(m): m for m in members(shape)}
    norm = normalize(key)
    for candidate in (
        norm,
        norm[:-1] if norm.endswith("s") else None,
        norm[:-3] + "y" if norm.endswith("ies") else None,
    ):
        if candidate and candidate in by_norm:
            return by_norm[candidate]
    return None


# --- Java regular expressions (botocore's patterns) -----------------------------------------------------------

_ANY_PRINTABLE = "\\u0020-\\U0010FFFF"
# Classes Python's `re` lacks, by their Java meaning.
_JAVA_CLASSES = {
    "Print": "\\u0020-\\u007E",
    "Alpha": "A-Za-z",
    "Alnum": "A-Za-z0-9",
    "Digit": "0-9",
    "Punct": "!-/:-@\\[-`{-~",
    "Upper": "A-Z",
    "Lower": "a-z",
    "Space": " \\t\\n\\x0B\\f\\r",
}
# Java spells the supplementary planes as a surrogate pair range; Python as code points.
_SURROGATE_RANGE = "\\uD800\\uDC00-\\uDBFF\\uDFFF"
_CLASS_ESCAPE = re.compile(r"\\([pP])\{(\w+)\}")


@dataclass(frozen=True)
class CompiledPattern:
    regex: re.Pattern[str]
    source: str
    approximated: bool


@cache
def compile_pattern(pattern: str) -> CompiledPattern | None:
    """A botocore pattern as a Python regex (matched against the whole value, as AWS does), or None if untranslatable.

    Unicode categories (`\\p{L}`, `\\p{N}`...) become "any printable character": an approximated pattern accepts a
    little more than AWS does, never less, so it can miss a bad value but never refuses a good one.
    """
    text = pattern.replace(_SURROGATE_RANGE, "\\U00010000-\\U0010FFFF")
    out: list[str] = []
    approximated = False
    in_class = False
    i = 0
    while i < len(text):
        ch = text[i]
        found = _CLASS_ESCAPE.match(text, i) if ch == "\\" else None
        if found:
            exact = _JAVA_CLASSES.get(found.group(2)) if found.group(1) == "p" else None
            approximated = approximated or exact is None
            body = exact or _ANY_PRINTABLE
            out.append(body if in_class else f"[{body}]")
            i = found.end()
            continue
        if ch == "\\":
            out.append(text[i : i + 2])
            i += 2
            continue
        if ch == "[" and not in_class:
            in_class = True
        elif ch == "]" and in_class:
            in_class = False
        out.append(ch)
        i += 1
    try:
        return CompiledPattern(re.compile("".join(out)), pattern, approximated)
    except re.error:
        return None


# --- Pulumi input schemas --------------------------------------------------------------------------------------


@dataclass
class PulumiNode:
    """One Pulumi input: a scalar (`py` names its Python type), an object with `fields`, a list or a map of `item`."""

    kind: str  # "scalar" | "object" | "list" | "map"
    py: str = ""
    fields: dict[str, PulumiNode] = field(default_factory=dict)
    item: PulumiNode | None = None


_FORWARD_ARGS = re.compile(r"ForwardRef\('(\w+Args)'\)")
_MAX_DEPTH = 12


def _args_class(type_token: str) -> type | None:
    """`aws:sagemaker/model:Model` -> pulumi_aws.sagemaker.ModelArgs; `docker-build:index:Image` -> ImageArgs."""
    package, module_part, cls = type_token.split(":")
    py_package = {"aws": "pulumi_aws", "aws-native": "pulumi_aws_native", "docker-build": "pulumi_docker_build"}.get(
        package
    )
    if py_package is None:
        return None
    module_name = module_part.split("/")[0]
    mod = importlib.import_module(py_package if module_name == "index" else f"{py_package}.{module_name}")
    resource = getattr(mod, cls, None)
    if not isinstance(resource, type):
        return None
    # Where a nested input type already has the name `<Type>Args`, the SDK calls the resource's `<Type>InitArgs`.
    own = importlib.import_module(resource.__module__)
    for candidate in (f"{cls}InitArgs", f"{cls}Args"):
        args = getattr(own, candidate, None)
        if isinstance(args, type):
            return args
    return None


def _node_from_annotation(annotation: Any, module: str, depth: int) -> PulumiNode:
    text = str(annotation)
    head = text.removeprefix("typing.Union[")
    if head.startswith(("typing.Sequence[", "collections.abc.Sequence[")):
        inner = _scalar_or_args(text, module, depth)
        return PulumiNode("list", item=inner)
    if head.startswith(("typing.Mapping[", "collections.abc.Mapping[")):
        inner = _scalar_or_args(text, module, depth)
        return PulumiNode("map", item=inner)
    return _scalar_or_args(text, module, depth)


def _scalar_or_args(text: str, module: str, depth: int) -> PulumiNode:
    found = _FORWARD_ARGS.search(text)
    if found and depth < _MAX_DEPTH:
        cls = getattr(importlib.import_module(module), found.group(1), None)
        if isinstance(cls, type):
            return PulumiNode("object", fields=_fields_of(cls, depth + 1))
    for py in ("bool", "int", "float", "str"):
        if re.search(rf"\b{py}\b", text):
            return PulumiNode("scalar", py=py)
    return PulumiNode("scalar", py="str")  # enums and Output-only unions arrive as strings


def _fields_of(cls: type, depth: int) -> dict[str, PulumiNode]:
    out: dict[str, PulumiNode] = {}
    module = cls.__module__
    inputs_module = module.rsplit(".", 1)[0] + "._inputs" if not module.endswith("._inputs") else module
    for prop in vars(cls).values():
        if not isinstance(prop, property) or prop.fget is None:
            continue
        name = getattr(prop.fget, "_pulumi_name", None)
        if not name:
            continue
        out[name] = _node_from_annotation(prop.fget.__annotations__.get("return", "str"), inputs_module, depth)
    return out


@cache
def pulumi_schema(type_token: str) -> PulumiNode | None:
    """Every input the installed Pulumi SDK accepts for `type_token`, as a tree (None for unknown packages)."""
    cls = _args_class(type_token)
    if cls is None:
        return None
    return PulumiNode("object", fields=_fields_of(cls, 0))


def schema_paths(node: PulumiNode, prefix: str = "") -> list[str]:
    """Leaf paths of a Pulumi input tree, in the `a.b[].c` notation of the mappings."""
    if node.kind == "object":
        paths: list[str] = []
        for name, child in node.fields.items():
            paths.extend(schema_paths(child, f"{prefix}.{name}" if prefix else name))
        return paths or [prefix]
    if node.kind in ("list", "map") and node.item is not None:
        return schema_paths(node.item, prefix + ("[]" if node.kind == "list" else "{}"))
    return [prefix]


# --- mappings --------------------------------------------------------------------------------------------------

# Inputs every AWS resource of pulumi-aws v7 takes that never reach the request shape as such.
COMMON_IGNORED: dict[str, str] = {
    "region": "provider setting (the endpoint the call goes to), not a request member; checked by the stack config",
    "tagsAll": "provider-computed union of tags and default tags",
    "timeouts": "provider wait settings, not sent to AWS",
}


@dataclass(frozen=True)
class Rule:
    """A constraint AWS documents for a member but its model does not encode (e.g. KMS's 7-30 day window)."""

    allowed: str
    check: Callable[[Any], bool]
    source: str


@dataclass(frozen=True)
class ResourceMapping:
    """How one Pulumi resource type's inputs map onto an AWS API request (see the module docstring)."""

    service: str | None  # botocore service name; None for docker-build's Image (tools.validate._check_image)
    operation: str | None
    # Pulumi path -> AWS member: a member name relative to the parent shape, `Op:Member.Path` (top level only)
    # for inputs the provider sends with a second call (KMS key rotation, a role's inline policies), or "" for a
    # block whose inputs are members of the parent structure itself.
    fields: Mapping[str, str] = field(default_factory=dict)
    ignored: Mapping[str, str] = field(default_factory=dict)
    # AWS path (dotted member names) -> who fills a required member the plan does not set.
    provided: Mapping[str, str] = field(default_factory=dict)
    # Pulumi path -> kind of IAM policy document held there: identity | trust | resource | key | repository
    # (a resource policy that names no Resource because it is attached to one, like an ECR repository's).
    policies: Mapping[str, str] = field(default_factory=dict)
    # Pulumi path -> kind of other JSON document with rules of its own (see tools.validate.DOCUMENT_CHECKS).
    documents: Mapping[str, str] = field(default_factory=dict)
    rules: Mapping[str, Rule] = field(default_factory=dict)
    # Pulumi path of the tags map (AWS gets a list of {Key, Value}), and the AWS member receiving it.
    tags: tuple[str, str] | None = ("tags", "Tags")
    note: str = ""


_AUTONAMED = "Pulumi auto-names the resource from its logical name when the input is unset"


def _kms_window(v: Any) -> bool:
    return isinstance(v, int | float) and 7 <= v <= 30


def _cw_period(v: Any) -> bool:
    return isinstance(v, int | float) and float(v).is_integer() and (v in (10, 20, 30) or (v >= 60 and v % 60 == 0))


_BUCKET_NAME = re.compile(r"(?!xn--)(?!sthree-)(?!.*\.\.)(?!\d+\.\d+\.\d+\.\d+$)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_SNS_PROTOCOLS = ("http", "https", "email", "email-json", "sms", "sqs", "application", "lambda", "firehose")
_SNS_TOPIC_ARN = re.compile(r"arn:aws[\w-]*:sns:[a-z0-9-]+:\d{12}:[\w.-]+")
_SCHEDULE_EXPRESSION = re.compile(r"(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\(.+\)|at\(.+\))")

_KMS_KEY_REF = re.compile(
    r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32}|alias/[\w/-]+"
    r"|arn:aws[\w-]*:kms:[a-z0-9-]+:\d{12}:(key/([0-9a-f-]{36}|mrk-[0-9a-f]{32})|alias/[\w/-]+))"
)
_KMS_KEY_RULE = Rule(
    "a KMS key id, key ARN, alias name (alias/...) or alias ARN",
    lambda v: isinstance(v, str) and _KMS_KEY_REF.fullmatch(v) is not None,
    "KMS key identifiers",
)

# Rules by botocore shape, wherever the shape appears. These describe a value's format, so unlike the per-field
# rules they also hold for values unknown until deployment (a generated bucket name is still a bucket name).
SHAPE_RULES: dict[tuple[str, str], Rule] = {
    ("s3", "BucketName"): Rule(
        "an S3 bucket name: 3-63 lowercase letters, digits, dots and hyphens, starting and ending with a letter"
        " or digit",
        lambda v: isinstance(v, str) and _BUCKET_NAME.fullmatch(v) is not None,
        "S3 bucket naming rules",
    ),
    ("kms", "KeyIdType"): _KMS_KEY_RULE,
    ("s3", "SSEKMSKeyId"): _KMS_KEY_RULE,
}

MAPPINGS: dict[str, ResourceMapping] = {
    # --- S3 ---------------------------------------------------------------------------------------------------
    "aws:s3/bucket:Bucket": ResourceMapping(
        "s3",
        "CreateBucket",
        fields={"bucket": "Bucket", "objectLockEnabled": "ObjectLockEnabledForBucket"},
        ignored={
            "forceDestroy": "provider behaviour on delete (empties the bucket), not sent to AWS",
            "bucketPrefix": "provider auto-naming prefix",
            **{
                legacy: "deprecated inline bucket setting; this program uses the separate aws:s3/bucket* resources"
                for legacy in (
                    "accelerationStatus",
                    "corsRules",
                    "grants",
                    "lifecycleRules",
                    "logging",
                    "objectLockConfiguration",
                    "policy",
                    "replicationConfiguration",
                    "requestPayer",
                    "serverSideEncryptionConfiguration",
                    "versioning",
                    "website",
                )
            },
        },
        provided={"Bucket": _AUTONAMED},
        tags=("tags", "PutBucketTagging:Tagging.TagSet"),
    ),
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": ResourceMapping(
        "s3",
        "PutBucketLifecycleConfiguration",
        fields={"rules": "LifecycleConfiguration.Rules", "rules[].filter.and": "And"},
        ignored={"transitionDefaultMinimumObjectSize": "S3 request header the provider sets; a two-value enum"},
        tags=None,
    ),
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": ResourceMapping(
        "s3",
        "PutBucketOwnershipControls",
        fields={"rule": "OwnershipControls.Rules"},
        tags=None,
    ),
    "aws:s3/bucketPolicy:BucketPolicy": ResourceMapping(
        "s3", "PutBucketPolicy", policies={"policy": "resource"}, tags=None
    ),
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": ResourceMapping(
        "s3",
        "PutPublicAccessBlock",
        fields={
            "blockPublicAcls": "PublicAccessBlockConfiguration.BlockPublicAcls",
            "blockPublicPolicy": "PublicAccessBlockConfiguration.BlockPublicPolicy",
            "ignorePublicAcls": "PublicAccessBlockConfiguration.IgnorePublicAcls",
            "restrictPublicBuckets": "PublicAccessBlockConfiguration.RestrictPublicBuckets",
        },
        ignored={"skipDestroy": "provider behaviour on delete, not sent to AWS"},
        provided={"PublicAccessBlockConfiguration": "the provider builds it from the four flags"},
        tags=None,
    ),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": ResourceMapping(
        "s3",
        "PutBucketEncryption",
        fields={
            "rules": "ServerSideEncryptionConfiguration.Rules",
            "rules[].blockedEncryptionTypes": "BlockedEncryptionTypes.EncryptionType",
            "rule": "ServerSideEncryptionConfiguration.Rules",
            "rule.blockedEncryptionTypes": "BlockedEncryptionTypes.EncryptionType",
        },
        provided={"ServerSideEncryptionConfiguration": "the provider builds it from `rules`"},
        tags=None,
    ),
    "aws:s3/bucketVersioning:BucketVersioning": ResourceMapping(
        "s3",
        "PutBucketVersioning",
        fields={"versioningConfiguration": "VersioningConfiguration", "versioningConfiguration.mfaDelete": "MFADelete"},
        tags=None,
    ),
    "aws:s3/bucketObjectv2:BucketObjectv2": ResourceMapping(
        "s3",
        "PutObject",
        fields={
            "kmsKeyId": "SSEKMSKeyId",
            "acl": "ACL",
            "websiteRedirect": "WebsiteRedirectLocation",
            "content": "Body",
            "contentBase64": "Body",
        },
        ignored={
            "source": "a local file the provider uploads as the body",
            "sourceHash": "provider change detection, not sent to AWS",
            "etag": "provider change detection, not sent to AWS",
            "forceDestroy": "provider behaviour on delete, not sent to AWS",
            "overrideProvider": "provider settings for this resource, not sent to AWS",
            "tags": "sent URL-encoded in the Tagging header, a plain string in the model",
        },
        tags=None,
    ),
    # A promoted model file copied into this stack's bucket (components/promotion.py): one CopyObject.
    "aws:s3/objectCopy:ObjectCopy": ResourceMapping(
        "s3",
        "CopyObject",
        fields={
            "source": "CopySource",
            "copyIfMatch": "CopySourceIfMatch",
            "copyIfModifiedSince": "CopySourceIfModifiedSince",
            "copyIfNoneMatch": "CopySourceIfNoneMatch",
            "copyIfUnmodifiedSince": "CopySourceIfUnmodifiedSince",
            "customerAlgorithm": "SSECustomerAlgorithm",
            "customerKeyMd5": "SSECustomerKeyMD5",
            "kmsEncryptionContext": "SSEKMSEncryptionContext",
            "sourceCustomerAlgorithm": "CopySourceSSECustomerAlgorithm",
            "sourceCustomerKeyMd5": "CopySourceSSECustomerKeyMD5",
            "websiteRedirect": "WebsiteRedirectLocation",
        },
        ignored={
            "kmsKeyId": "a sensitive input of the provider: the plan records it as a secret, not a string",
            "customerKey": "a sensitive input (SSE-C key), recorded as a secret",
            "sourceCustomerKey": "a sensitive input (SSE-C key), recorded as a secret",
            "forceDestroy": "provider behaviour on delete, not sent to AWS",
            "grants": "the provider turns each grant into a Grant* header",
            "overrideProvider": "provider settings for this resource, not sent to AWS",
            "tags": "sent URL-encoded in the Tagging header, a plain string in the model",
        },
        tags=None,
    ),
    # --- KMS --------------------------------------------------------------------------------------------------
    "aws:kms/key:Key": ResourceMapping(
        "kms",
        "CreateKey",
        fields={
            "deletionWindowInDays": "ScheduleKeyDeletion:PendingWindowInDays",
            "rotationPeriodInDays": "EnableKeyRotation:RotationPeriodInDays",
            "customKeyStoreId": "CustomKeyStoreId",
            "xksKeyId": "XksKeyId",
        },
        ignored={
            "enableKeyRotation": "a call (EnableKeyRotation) rather than a value; the boolean has no constraints",
            "isEnabled": "a call (EnableKey/DisableKey) rather than a value; the boolean has no constraints",
        },
        policies={"policy": "key"},
        rules={
            "deletionWindowInDays": Rule(
                "7 to 30 days", _kms_window, "KMS ScheduleKeyDeletion documentation (the model allows 1-365)"
            )
        },
    ),
    "aws:kms/alias:Alias": ResourceMapping(
        "kms",
        "CreateAlias",
        fields={"name": "AliasName"},
        ignored={"namePrefix": "provider auto-naming prefix"},
        provided={"AliasName": _AUTONAMED},
        rules={
            "name": Rule(
                "a name starting with `alias/` and not `alias/aws/` (reserved for AWS managed keys)",
                lambda v: isinstance(v, str) and v.startswith("alias/") and not v.startswith("alias/aws/"),
                "KMS CreateAlias documentation",
            )
        },
        tags=None,
    ),
    # --- IAM --------------------------------------------------------------------------------------------------
    "aws:iam/role:Role": ResourceMapping(
        "iam",
        "CreateRole",
        fields={
            "name": "RoleName",
            "assumeRolePolicy": "AssumeRolePolicyDocument",
            "maxSessionDuration": "MaxSessionDuration",
            "permissionsBoundary": "PermissionsBoundary",
            "inlinePolicies": "PutRolePolicy:",
            "managedPolicyArns": "AttachRolePolicy:PolicyArn",  # one call per ARN
            "inlinePolicies[].name": "PolicyName",
            "inlinePolicies[].policy": "PolicyDocument",
        },
        ignored={
            "namePrefix": "provider auto-naming prefix",
            "forceDetachPolicies": "provider behaviour on delete, not sent to AWS",
        },
        provided={
            "RoleName": _AUTONAMED,
            "PutRolePolicy:RoleName": "the provider sends the role's own name",
            "PutRolePolicy:PolicyName": "an inline policy entry without a name means 'no inline policies'",
            "PutRolePolicy:PolicyDocument": "an inline policy entry without a policy means 'no inline policies'",
        },
        policies={"assumeRolePolicy": "trust", "inlinePolicies[].policy": "identity"},
    ),
    "aws:iam/policy:Policy": ResourceMapping(
        "iam",
        "CreatePolicy",
        fields={"name": "PolicyName", "policy": "PolicyDocument"},
        ignored={
            "namePrefix": "provider auto-naming prefix",
            "delayAfterPolicyCreationInMs": "provider wait for IAM propagation, not sent to AWS",
        },
        provided={"PolicyName": _AUTONAMED},
        policies={"policy": "identity"},
    ),
    "aws:iam/rolePolicy:RolePolicy": ResourceMapping(
        "iam",
        "PutRolePolicy",
        fields={"name": "PolicyName", "policy": "PolicyDocument", "role": "RoleName"},
        ignored={"namePrefix": "provider auto-naming prefix"},
        provided={"PolicyName": _AUTONAMED},
        policies={"policy": "identity"},
        tags=None,
    ),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": ResourceMapping(
        "iam", "AttachRolePolicy", fields={"role": "RoleName", "policyArn": "PolicyArn"}, tags=None
    ),
    # --- ECR --------------------------------------------------------------------------------------------------
    "aws:ecr/repository:Repository": ResourceMapping(
        "ecr",
        "CreateRepository",
        fields={"name": "repositoryName"},
        ignored={"forceDelete": "provider behaviour on delete (deletes images first), not sent to AWS"},
        provided={
            "repositoryName": _AUTONAMED,
            "encryptionConfiguration.encryptionType": "the provider's default, AES256",
        },
    ),
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": ResourceMapping(
        "ecr",
        "PutLifecyclePolicy",
        fields={"repository": "repositoryName", "policy": "lifecyclePolicyText"},
        documents={"policy": "ecr-lifecycle"},
        tags=None,
    ),
    "aws:ecr/repositoryPolicy:RepositoryPolicy": ResourceMapping(
        "ecr",
        "SetRepositoryPolicy",
        fields={"repository": "repositoryName", "policy": "policyText"},
        policies={"policy": "repository"},
        tags=None,
    ),
    # --- CloudWatch -------------------------------------------------------------------------------------------
    "aws:cloudwatch/metricAlarm:MetricAlarm": ResourceMapping(
        "cloudwatch",
        "PutMetricAlarm",
        fields={
            "name": "AlarmName",
            "alarmDescription": "AlarmDescription",
            "metricQueries": "Metrics",
            "metricQueries[].metric": "MetricStat",
            "metricQueries[].metric.metricName": "Metric.MetricName",
            "metricQueries[].metric.namespace": "Metric.Namespace",
            "metricQueries[].metric.dimensions": "Metric.Dimensions",
            "metricQueries[].metric.stat": "Stat",
            "metricQueries[].metric.period": "Period",
            "metricQueries[].metric.unit": "Unit",
            "dimensions": "Dimensions",
            "statistic": "Statistic",
            "thresholdMetricId": "ThresholdMetricId",
        },
        provided={"AlarmName": _AUTONAMED},
        rules={
            "period": Rule(
                "10, 20, 30 or a multiple of 60 seconds", _cw_period, "CloudWatch PutMetricAlarm documentation"
            ),
            "metricQueries[].metric.period": Rule(
                "10, 20, 30 or a multiple of 60 seconds", _cw_period, "CloudWatch PutMetricAlarm documentation"
            ),
        },
    ),
    "aws:cloudwatch/dashboard:Dashboard": ResourceMapping(
        "cloudwatch",
        "PutDashboard",
        fields={"dashboardName": "DashboardName", "dashboardBody": "DashboardBody"},
        documents={"dashboardBody": "cloudwatch-dashboard"},
        rules={
            "dashboardName": Rule(
                "1-255 characters: letters, digits, `-` and `_`",
                lambda v: isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9_-]{1,255}", v) is not None,
                "CloudWatch PutDashboard documentation",
            )
        },
        tags=None,
    ),
    "aws:cloudwatch/compositeAlarm:CompositeAlarm": ResourceMapping(
        "cloudwatch",
        "PutCompositeAlarm",
        # "" flattens a block: its inputs are members of the request itself.
        fields={
            "actionsSuppressor": "",
            "actionsSuppressor.alarm": "ActionsSuppressor",
            "actionsSuppressor.waitPeriod": "ActionsSuppressorWaitPeriod",
            "actionsSuppressor.extensionPeriod": "ActionsSuppressorExtensionPeriod",
        },
    ),
    "aws:cloudwatch/logGroup:LogGroup": ResourceMapping(
        "logs",
        "CreateLogGroup",
        fields={"name": "logGroupName", "retentionInDays": "PutRetentionPolicy:retentionInDays"},
        ignored={
            "namePrefix": "provider auto-naming prefix",
            "skipDestroy": "provider behaviour on delete, not sent to AWS",
        },
        provided={"logGroupName": _AUTONAMED},
        tags=("tags", "tags"),
    ),
    # --- EventBridge (rules and targets) ----------------------------------------------------------------------
    "aws:cloudwatch/eventRule:EventRule": ResourceMapping(
        "events",
        "PutRule",
        ignored={
            "namePrefix": "provider auto-naming prefix",
            "forceDestroy": "provider behaviour on delete (removes managed rules' targets), not sent to AWS",
            "isEnabled": "deprecated alias the provider turns into `state`; a boolean",
        },
        provided={"Name": _AUTONAMED},
        documents={"eventPattern": "event-pattern"},
    ),
    "aws:cloudwatch/eventTarget:EventTarget": ResourceMapping(
        "events",
        "PutTargets",
        # One aws.cloudwatch.EventTarget is one entry of PutTargets' Targets list.
        fields={
            "targetId": "Targets.Id",
            "arn": "Targets.Arn",
            "roleArn": "Targets.RoleArn",
            "input": "Targets.Input",
            "inputPath": "Targets.InputPath",
            "inputTransformer": "Targets.InputTransformer",
            "retryPolicy": "Targets.RetryPolicy",
            "deadLetterConfig": "Targets.DeadLetterConfig",
            "ecsTarget": "Targets.EcsParameters",
            "batchTarget": "Targets.BatchParameters",
            "kinesisTarget": "Targets.KinesisParameters",
            "sqsTarget": "Targets.SqsParameters",
            "httpTarget": "Targets.HttpParameters",
            "redshiftTarget": "Targets.RedshiftDataParameters",
            "runCommandTargets": "Targets.RunCommandParameters.RunCommandTargets",
            "appsyncTarget": "Targets.AppSyncParameters",
            "sagemakerPipelineTarget": "Targets.SageMakerPipelineParameters",
            "sagemakerPipelineTarget.pipelineParameterLists": "PipelineParameterList",
            "ecsTarget.networkConfiguration": "NetworkConfiguration.awsvpcConfiguration",
            "ecsTarget.placementConstraints": "PlacementConstraints",
            "ecsTarget.orderedPlacementStrategies": "PlacementStrategy",
            "ecsTarget.capacityProviderStrategies": "CapacityProviderStrategy",
            "ecsTarget.tags": "Tags",
            "batchTarget.jobAttempts": "RetryStrategy.Attempts",
            "batchTarget.arraySize": "ArrayProperties.Size",
            "httpTarget.headerParameters": "HeaderParameters",
            "httpTarget.queryStringParameters": "QueryStringParameters",
            "redshiftTarget.dbUser": "DbUser",
            "redshiftTarget.secretsManagerArn": "SecretManagerArn",
            "inputTransformer.inputPaths": "InputPathsMap",
        },
        ignored={"forceDestroy": "provider behaviour on delete, not sent to AWS"},
        provided={"Targets": "the provider sends this resource's inputs as one entry of Targets"},
        tags=None,
    ),
    # --- Budgets ----------------------------------------------------------------------------------------------
    # terraform-provider-aws internal/service/budgets/budget.go: resourceBudgetCreate sends CreateBudget with the
    # budget, then one CreateNotification per `notification` block with its subscribers (createBudgetNotifications).
    "aws:budgets/budget:Budget": ResourceMapping(
        "budgets",
        "CreateBudget",
        fields={
            "name": "Budget.BudgetName",
            "budgetType": "Budget.BudgetType",
            "timeUnit": "Budget.TimeUnit",
            "limitAmount": "Budget.BudgetLimit.Amount",
            "limitUnit": "Budget.BudgetLimit.Unit",
            "plannedLimits": "Budget.PlannedBudgetLimits",
            "costTypes": "Budget.CostTypes",
            "timePeriodStart": "Budget.TimePeriod.Start",
            "timePeriodEnd": "Budget.TimePeriod.End",
            "autoAdjustData": "Budget.AutoAdjustData",
            "filterExpression": "Budget.FilterExpression",
            "metrics": "Budget.Metrics",
            "billingViewArn": "Budget.BillingViewArn",
            "notifications": "NotificationsWithSubscribers",
            "notifications[].comparisonOperator": "CreateNotification:Notification.ComparisonOperator",
            "notifications[].notificationType": "CreateNotification:Notification.NotificationType",
            "notifications[].threshold": "CreateNotification:Notification.Threshold",
            "notifications[].thresholdType": "CreateNotification:Notification.ThresholdType",
        },
        ignored={"namePrefix": "provider auto-naming prefix"},
        provided={
            "AccountId": "the provider sends the caller's account when accountId is unset",
            "Budget.BudgetName": _AUTONAMED,
            "NotificationsWithSubscribers.Notification": "sent by a second call, CreateNotification",
            "NotificationsWithSubscribers.Subscribers": "sent by a second call, CreateNotification",
        },
        # The provider turns the list of {name, values} into CostFilters' map of name -> values
        # (expandBudgetUnmarshal), and each subscriber into a Subscriber {SubscriptionType, Address}.
        rules={
            "costFilters": Rule(
                "a list of {name: a filter dimension such as TagKeyValue or Service, values: non-empty strings}"
                " (a TagKeyValue value is `user:<tag key>$<tag value>`)",
                lambda v: (
                    isinstance(v, list)
                    and all(
                        isinstance(f, dict)
                        and isinstance(f.get("name"), str)
                        and re.fullmatch(r"[A-Za-z]+", f["name"]) is not None
                        and isinstance(f.get("values"), list)
                        and bool(f["values"])
                        and all(isinstance(x, str) and x for x in f["values"])
                        for f in v
                    )
                ),
                "AWS Budgets API, Budget.CostFilters (a map of dimension name to values)",
            ),
            "plannedLimits[].startTime": Rule(
                "a time period timestamp `YYYY-MM-DD_hh:mm`",
                lambda v: isinstance(v, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}_\d{2}:\d{2}", v) is not None,
                "terraform-provider-aws internal/service/budgets/budget.go validTimePeriodTimestamp",
            ),
            "notifications[].subscriberSnsTopicArns": Rule(
                "SNS topic ARNs (arn:<partition>:sns:<region>:<account>:<topic>), at most 10 subscribers",
                lambda v: (
                    isinstance(v, list)
                    and len(v) <= 10
                    and all(
                        isinstance(x, str) and re.fullmatch(r"arn:aws[\w-]*:sns:[a-z0-9-]+:\d{12}:[\w.-]+", x)
                        for x in v
                    )
                ),
                "AWS Budgets API, Subscriber (SubscriptionType SNS; Address: the topic ARN)",
            ),
            "notifications[].subscriberEmailAddresses": Rule(
                "email addresses, at most 10 subscribers",
                lambda v: (
                    isinstance(v, list)
                    and len(v) <= 10
                    and all(isinstance(x, str) and re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", x) for x in v)
                ),
                "AWS Budgets API, Subscriber (SubscriptionType EMAIL)",
            ),
        },
        tags=("tags", "ResourceTags"),
    ),
    # --- SNS --------------------------------------------------------------------------------------------------
    "aws:sns/topic:Topic": ResourceMapping(
        "sns",
        "CreateTopic",
        # Topic settings travel as string attributes; the map value shape is what the model knows of them.
        fields={
            "name": "Name",
            "displayName": "Attributes",
            "kmsMasterKeyId": "Attributes",
            "policy": "Attributes",
            "deliveryPolicy": "Attributes",
            "fifoTopic": "Attributes",
            "contentBasedDeduplication": "Attributes",
            "signatureVersion": "Attributes",
            "tracingConfig": "Attributes",
            "archivePolicy": "Attributes",
            "fifoThroughputScope": "Attributes",
            "maximumMessageSize": "Attributes",
            **{
                f"{protocol}{outcome}": "Attributes"
                for protocol in ("application", "firehose", "http", "lambda", "sqs")
                for outcome in ("FailureFeedbackRoleArn", "SuccessFeedbackRoleArn", "SuccessFeedbackSampleRate")
            },
        },
        ignored={"namePrefix": "provider auto-naming prefix"},
        provided={"Name": _AUTONAMED},
        policies={"policy": "resource"},
        rules={
            "name": Rule(
                "1-256 characters: letters, digits, `-` and `_` (and a `.fifo` suffix for FIFO topics)",
                lambda v: isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9_-]{1,256}(\.fifo)?", v) is not None,
                "SNS CreateTopic documentation (the model has no pattern)",
            ),
            "displayName": Rule(
                "at most 100 characters", lambda v: isinstance(v, str) and len(v) <= 100, "SNS topic attributes"
            ),
        },
    ),
    "aws:sns/topicPolicy:TopicPolicy": ResourceMapping(
        "sns",
        "SetTopicAttributes",
        fields={"arn": "TopicArn", "policy": "AttributeValue"},
        provided={"AttributeName": "the provider sends `Policy`"},
        policies={"policy": "resource"},
        tags=None,
    ),
    "aws:sns/topicSubscription:TopicSubscription": ResourceMapping(
        "sns",
        "Subscribe",
        fields={
            "topic": "TopicArn",
            **{
                attribute: "Attributes"
                for attribute in (
                    "deliveryPolicy",
                    "filterPolicy",
                    "filterPolicyScope",
                    "rawMessageDelivery",
                    "redrivePolicy",
                    "replayPolicy",
                    "subscriptionRoleArn",
                )
            },
        },
        ignored={
            "confirmationTimeoutInMinutes": "provider wait setting, not sent to AWS",
            "endpointAutoConfirms": "provider wait setting, not sent to AWS",
        },
        rules={
            "protocol": Rule(
                "one of " + ", ".join(_SNS_PROTOCOLS),
                lambda v: v in _SNS_PROTOCOLS,
                "SNS Subscribe documentation (the model types it as a plain string)",
            )
        },
        tags=None,
    ),
    # --- EventBridge Scheduler --------------------------------------------------------------------------------
    "aws:scheduler/schedule:Schedule": ResourceMapping(
        "scheduler",
        "CreateSchedule",
        fields={
            "name": "Name",
            "target.ecsParameters.networkConfiguration.subnets": "awsvpcConfiguration.Subnets",
            "target.ecsParameters.networkConfiguration.assignPublicIp": "awsvpcConfiguration.AssignPublicIp",
            "target.ecsParameters.networkConfiguration.securityGroups": "awsvpcConfiguration.SecurityGroups",
            "target.sagemakerPipelineParameters.pipelineParameters": "PipelineParameterList",
        },
        ignored={"namePrefix": "provider auto-naming prefix"},
        provided={"Name": _AUTONAMED},
        rules={
            "scheduleExpression": Rule(
                "rate(N minutes|hours|days), cron(...) or at(...)",
                lambda v: isinstance(v, str) and _SCHEDULE_EXPRESSION.fullmatch(v) is not None,
                "EventBridge Scheduler schedule types",
            )
        },
        tags=None,
    ),
    # --- Application Auto Scaling -----------------------------------------------------------------------------
    "aws:appautoscaling/target:Target": ResourceMapping(
        "application-autoscaling",
        "RegisterScalableTarget",
        fields={"roleArn": "RoleARN"},
    ),
    "aws:appautoscaling/policy:Policy": ResourceMapping(
        "application-autoscaling",
        "PutScalingPolicy",
        fields={"name": "PolicyName"},
        provided={"PolicyName": "the `name` input (required by the provider)"},
        tags=None,
    ),
    # --- SageMaker --------------------------------------------------------------------------------------------
    "aws:sagemaker/model:Model": ResourceMapping(
        "sagemaker",
        "CreateModel",
        fields={"name": "ModelName", "containers": "Containers"},
        provided={"ModelName": _AUTONAMED},
    ),
    "aws:sagemaker/endpointConfiguration:EndpointConfiguration": ResourceMapping(
        "sagemaker",
        "CreateEndpointConfig",
        fields={"name": "EndpointConfigName", "kmsKeyArn": "KmsKeyId"},
        ignored={"namePrefix": "provider auto-naming prefix"},
        provided={
            "EndpointConfigName": _AUTONAMED,
            "ProductionVariants.VariantName": "the provider names a variant left unnamed",
            "ShadowProductionVariants.VariantName": "the provider names a variant left unnamed",
        },
    ),
    "aws:sagemaker/endpoint:Endpoint": ResourceMapping(
        "sagemaker",
        "CreateEndpoint",
        fields={"name": "EndpointName"},
        provided={"EndpointName": _AUTONAMED},
    ),
    "aws:sagemaker/trainingJob:TrainingJob": ResourceMapping(
        "sagemaker",
        "CreateTrainingJob",
        ignored={
            "deleteModelPackagesOnDestroy": "provider behaviour on delete, not sent to AWS",
            "deleteVpcEnisOnDestroy": "provider behaviour on delete, not sent to AWS",
        },
    ),
    "aws:sagemaker/dataQualityJobDefinition:DataQualityJobDefinition": ResourceMapping(
        "sagemaker",
        "CreateDataQualityJobDefinition",
        fields={"name": "JobDefinitionName"},
        provided={
            "JobDefinitionName": _AUTONAMED,
            "DataQualityJobInput.EndpointInput.LocalPath": "the provider's default, /opt/ml/processing/input",
            "DataQualityJobInput.BatchTransformInput.LocalPath": "the provider's default, /opt/ml/processing/input",
            "DataQualityJobOutputConfig.MonitoringOutputs.S3Output.LocalPath": (
                "the provider's default, /opt/ml/processing/output"
            ),
        },
    ),
    "aws:sagemaker/monitoringSchedule:MonitoringSchedule": ResourceMapping(
        "sagemaker",
        "CreateMonitoringSchedule",
        fields={
            "name": "MonitoringScheduleName",
            "monitoringScheduleConfig.monitoringJobDefinition.baseline": "BaselineConfig",
        },
        provided={"MonitoringScheduleName": _AUTONAMED},
    ),
    # pulumi-aws-native (Cloud Control / CloudFormation schema): pulumi-aws has no resource for these.
    "aws-native:sagemaker:ModelQualityJobDefinition": ResourceMapping(
        "sagemaker",
        "CreateModelQualityJobDefinition",
        ignored={
            "endpointName": "a CloudFormation-only property; the API names the endpoint in the job input",
            "tags": "CloudFormation's create-only tag list of {key, value}; the component sets none",
            "modelQualityJobInput.batchTransformInput": "batch transform monitoring: the component monitors endpoints",
        },
        provided={"JobDefinitionName": "CloudFormation generates a name when the property is unset"},
        tags=None,
    ),
    "aws-native:sagemaker:ModelBiasJobDefinition": ResourceMapping(
        "sagemaker",
        "CreateModelBiasJobDefinition",
        ignored={
            "endpointName": "a CloudFormation-only property; the API names the endpoint in the job input",
            "tags": "CloudFormation's create-only tag list of {key, value}; the component sets none",
            "modelBiasJobInput.batchTransformInput": "batch transform monitoring: the component monitors endpoints",
        },
        provided={"JobDefinitionName": "CloudFormation generates a name when the property is unset"},
        tags=None,
    ),
    "aws:sagemaker/modelPackageGroup:ModelPackageGroup": ResourceMapping("sagemaker", "CreateModelPackageGroup"),
    "aws:sagemaker/modelPackageGroupPolicy:ModelPackageGroupPolicy": ResourceMapping(
        "sagemaker",
        "PutModelPackageGroupPolicy",
        policies={"resourcePolicy": "resource"},
        tags=None,
    ),
    # terraform-provider-aws internal/service/s3/bucket_notification.go: PutBucketNotificationConfiguration with
    # the whole configuration; `eventbridge = true` becomes an empty EventBridgeConfiguration structure.
    "aws:s3/bucketNotification:BucketNotification": ResourceMapping(
        "s3",
        "PutBucketNotificationConfiguration",
        ignored={
            "eventbridge": "a boolean the provider turns into NotificationConfiguration.EventBridgeConfiguration {}",
            "lambdaFunctions": "NotificationConfiguration's Lambda targets; the components set none",
            "queues": "NotificationConfiguration's SQS targets; the components set none",
            "topics": "NotificationConfiguration's SNS targets; the components set none",
        },
        provided={
            "NotificationConfiguration": "the provider builds it from eventbridge, queue, topic, lambda_function"
        },
        tags=None,
    ),
    # terraform-provider-aws internal/service/sagemaker/mlflow_tracking_server.go sends every argument to
    # CreateMlflowTrackingServer under the same name.
    "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer": ResourceMapping(
        "sagemaker", "CreateMlflowTrackingServer"
    ),
    "aws:sagemaker/pipeline:Pipeline": ResourceMapping(
        "sagemaker",
        "CreatePipeline",
        fields={"pipelineDefinitionS3Location": "PipelineDefinitionS3Location"},
        documents={"pipelineDefinition": "pipeline-definition"},
        provided={"ClientRequestToken": "the provider generates one per call"},
    ),
    # --- docker-build (not an AWS API; its inputs that reach AWS are the ECR image tags) ----------------------
    "docker-build:index:Image": ResourceMapping(
        None,
        None,
        tags=None,
        note=(
            "docker-build's Image is not an AWS API call: the image tags that land in ECR and the build platforms"
            " are checked (ECR ImageTag shape, docker's reference grammar, the SDK's Platform enum); build"
            " settings (context, Dockerfile, args, cache, exports) only reach the local builder."
        ),
    ),
}


# --- resolution: Pulumi input -> AWS member ------------------------------------------------------------------


def descend(shape: Shape, dotted: str) -> Shape | None:
    """Follow `A.B` from `shape` (stepping through lists), or None when a member is missing."""
    current: Shape = shape
    for part in dotted.split(".") if dotted else []:
        current = item_shape(current)
        if not isinstance(current, StructureShape) or part not in members(current):
            return None
        current = members(current)[part]
    return current


def item_shape(shape: Shape) -> Shape:
    """The structure inside a list shape (Pulumi sends a one-element block where AWS has a list, and back)."""
    while shape.type_name == "list":
        shape = list_member(shape)
    return shape


def pair_members(shape: Shape) -> tuple[str, str] | None:
    """(key member, value member) when AWS takes a list of {Key|Name, Value} where Pulumi sends a map."""
    if shape.type_name != "list":
        return None
    inner = item_shape(shape)
    names = members(inner) if isinstance(inner, StructureShape) else {}
    if len(names) != 2:
        return None
    for key, value in (("Key", "Value"), ("Name", "Value"), ("TagKey", "TagValue")):
        if key in names and value in names:
            return key, value
    return None


@dataclass(frozen=True)
class Target:
    """The AWS member a Pulumi input fills: its name as shown in messages and its botocore shape."""

    member: str
    shape: Shape
    redirected: bool = False  # sent with a second API call (so the main request's required members do not apply)


def _join_member(op: str, rest: str) -> str:
    return f"{op}.{rest}" if rest else op


def resolve_child(mapping: ResourceMapping, parent: Shape, ppath: str, key: str) -> Target | None:
    """The AWS member for input `key` under the Pulumi path `ppath` whose AWS shape is `parent`."""
    full = f"{ppath}.{key}" if ppath else key
    explicit = mapping.fields.get(full)
    if explicit is not None:
        if ":" in explicit:
            if mapping.service is None:
                return None
            op, rest = explicit.split(":", 1)
            found = descend(input_shape(mapping.service, op), rest)
            return Target(_join_member(op, rest), found, redirected=True) if found is not None else None
        found = descend(parent, explicit)
        return Target(explicit, found) if found is not None else None
    struct = item_shape(parent)
    if not isinstance(struct, StructureShape):
        return None
    member = member_for(struct, key)
    return Target(member, members(struct)[member]) if member is not None else None


def is_ignored(mapping: ResourceMapping, ppath: str) -> str | None:
    """The reason an input is not checked against a request shape, or None when it is."""
    if ppath in mapping.ignored:
        return mapping.ignored[ppath]
    if "." not in ppath and "[" not in ppath and ppath in COMMON_IGNORED:
        return COMMON_IGNORED[ppath]
    return None


def unresolved_paths(type_token: str) -> list[str]:
    """Inputs the installed SDK accepts for `type_token` that map to no AWS member and are not ignored.

    Empty for a complete mapping: tests hold every mapping to that, for every input, not only today's.
    """
    mapping = MAPPINGS[type_token]
    schema = pulumi_schema(type_token)
    if schema is None or mapping.service is None or mapping.operation is None:
        return []
    missing: list[str] = []

    def walk(node: PulumiNode, shape: Shape, ppath: str) -> None:
        for key, child in node.fields.items():
            full = f"{ppath}.{key}" if ppath else key
            if is_ignored(mapping, full) is not None or (mapping.tags and full == mapping.tags[0]):
                continue
            if (
                full in mapping.rules
                and full not in mapping.fields
                and resolve_child(mapping, shape, ppath, key) is None
            ):
                continue  # checked by a documented rule only
            target = resolve_child(mapping, shape, ppath, key)
            if target is None:
                missing.append(full)
                continue
            if child.kind == "map" and pair_members(target.shape) is not None:
                continue  # a Pulumi map that AWS takes as a list of {Key|Name, Value}
            sub = child
            suffix = ""
            while sub.kind in ("list", "map") and sub.item is not None:
                suffix += "[]" if sub.kind == "list" else "{}"
                sub = sub.item
            aws = item_shape(target.shape)
            if full in mapping.policies or full in mapping.documents:
                continue  # a JSON document (the SDK also takes it as an object): AWS gets the string
            if sub.kind == "scalar" and isinstance(aws, StructureShape):
                missing.append(f"{full} (a value, but AWS {target.member} is a structure)")
                continue
            if sub.kind == "object":
                if aws.type_name == "map":
                    continue  # free-form key/value structure; values checked against the map's value shape
                if not isinstance(aws, StructureShape):
                    missing.append(f"{full} (object, but AWS {target.member} is a {aws.type_name})")
                    continue
                walk(sub, aws, full + suffix)

    walk(schema, input_shape(mapping.service, mapping.operation), "")
    return missing
