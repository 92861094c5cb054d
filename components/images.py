"""`ContainerImage`: an ECR repository and an image built from this repo, referenced by digest (or a prebuilt one).

Used for every image of the platform (training, serving, monitoring). The tag is a hash of the files that go
into the image AND of every other input on which pulumi-docker-build decides to rebuild, computed here in Python
at program time, so an unchanged tree never pushes a new tag and a rebuild never pushes an existing one.

Why both: the repository's tags are immutable, and pulumi-docker-build rebuilds (and pushes a new digest under
the same tags) whenever its Diff sees a change in build args, labels, cache settings, platforms, push, the
Dockerfile or context location, the context's files, or the registries (pulumi/pulumi-docker-build
`provider/internal/image.go`, `(*Image) Diff`). A provider upgrade can change how it hashes the context, so its
version is part of the tag too. A tag that hashed the files alone would meet ECR's `ImageTagAlreadyExistsException`
on such a rebuild.
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib.metadata
import json
import os
import re
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import NotRequired, TypedDict

import pulumi
import pulumi_aws as aws
import pulumi_docker_build as docker_build

from components.settings import image_by_digest

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The build context of every image: the repository root, so Dockerfiles may copy shared folders."""

PLATFORM = docker_build.Platform.LINUX_AMD64
"""SageMaker runs x86_64 instances for every instance type this platform uses."""

REVISION_BUILD_ARG = "REVISION"
"""Build arg carrying the content hash; a Dockerfile may use it for its `org.opencontainers.image.revision` label."""

REVISION_LABEL = "org.opencontainers.image.revision"
SOURCE_BUILD_ARG = "SOURCE"
SOURCE_LABEL = "org.opencontainers.image.source"

CACHE_TAG = "buildcache"
"""The single, moving tag of the build cache in each image's cache repository."""

CACHE_UNTAGGED_EXPIRY_DAYS = 7
"""Cache manifests replaced by a newer build are untagged; they are expired after this many days."""

# Files that never change what an image does, and that differ between checkouts (bytecode, caches, editor
# droppings). Leaving them out keeps the hash equal on every machine for the same source tree.
_JUNK_DIRS = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".git", ".venv", "node_modules"})
_JUNK_FILES = ("*.pyc", "*.pyo", ".DS_Store", "*.swp", "*~")

_ECR_IMAGE = re.compile(
    r"^(?P<account>[0-9]{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?"
    r"/(?P<repo>[a-z0-9._/-]+)@sha256:[0-9a-f]{64}$"
)


class ImageBuildError(ValueError):
    """A Dockerfile or its context cannot be hashed (missing file, unsupported COPY source); the message says which."""


# --- content hash ------------------------------------------------------------------------------------------


def _instructions(dockerfile_text: str) -> list[str]:
    """Logical instruction lines of a Dockerfile: comments dropped, backslash continuations joined."""
    lines: list[str] = []
    current = ""
    for raw in dockerfile_text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        if current.strip():
            lines.append(current.strip())
        current = ""
    if current.strip():
        lines.append(current.strip())
    return lines


def dockerfile_sources(dockerfile: Path) -> list[str]:
    """The context paths a Dockerfile's `COPY`/`ADD` instructions read, relative to the context root.

    `COPY --from=...` reads another stage or image, not the context, and is skipped; so are `ADD` of URLs.
    Sources with variables cannot be resolved before the build and are refused (name the path literally).
    """
    sources: list[str] = []
    for line in _instructions(dockerfile.read_text()):
        keyword, _, rest = line.partition(" ")
        if keyword.upper() not in ("COPY", "ADD"):
            continue
        rest = rest.strip()
        if rest.startswith("["):
            try:
                args = [str(a) for a in json.loads(rest)]
            except json.JSONDecodeError as exc:
                raise ImageBuildError(f"{dockerfile}: cannot parse {line!r} ({exc.msg})") from None
            flags: list[str] = []
        else:
            words = shlex.split(rest)
            flags = [w for w in words if w.startswith("--")]
            args = [w for w in words if not w.startswith("--")]
            if any(a.startswith("[") for a in args):
                # Flags before an exec-form list: `COPY --chown=x ["a", "b"]`.
                joined = rest[rest.index("[") :]
                args = [str(a) for a in json.loads(joined)]
        if any(f.startswith("--from") for f in flags) or len(args) < 2:
            continue
        for src in args[:-1]:
            if re.match(r"^[a-z]+://", src) or src.startswith("<<"):
                continue
            if "$" in src:
                raise ImageBuildError(
                    f"{dockerfile}: {keyword} source {src!r} uses a variable; the content hash needs literal paths"
                )
            sources.append(src.lstrip("/") or ".")
    return sources


def _is_junk(rel: Path) -> bool:
    return any(part in _JUNK_DIRS for part in rel.parts[:-1]) or any(
        fnmatch.fnmatch(rel.name, pattern) for pattern in _JUNK_FILES
    )


def _expand(context: Path, source: str, dockerfile: Path) -> list[Path]:
    """Every file a COPY source stands for (globs expanded, folders walked), as paths under `context`."""
    matches = sorted(context.glob(source)) if any(c in source for c in "*?[") else [context / source]
    if not matches or not all(m.exists() or m.is_symlink() for m in matches):
        raise ImageBuildError(
            f"{dockerfile}: COPY/ADD source {source!r} does not exist under the build context {context}"
        )
    files: list[Path] = []
    for match in matches:
        if match.is_dir() and not match.is_symlink():
            for root, dirs, names in os.walk(match):
                dirs[:] = sorted(d for d in dirs if d not in _JUNK_DIRS)
                files.extend(Path(root) / n for n in names)
        else:
            files.append(match)
    return files


def content_hash(context: Path, dockerfile: str, extra_paths: Sequence[str] = ()) -> str:
    """SHA-256 over the Dockerfile and every file its `COPY`/`ADD` sources name (plus `extra_paths`).

    Deterministic across machines: files are visited in sorted order of their path relative to `context`;
    each contributes its path, whether it is executable, and its bytes (a symlink contributes its target).
    Bytecode and tool caches are left out. `<Dockerfile>.dockerignore` and the context's `.dockerignore` are
    hashed too, since they change what the build sees.
    """
    context = context.resolve()
    dockerfile_path = context / dockerfile
    if not dockerfile_path.is_file():
        raise ImageBuildError(f"no Dockerfile at {dockerfile!r} under the build context {context}")
    files: set[Path] = {dockerfile_path}
    # Ignore files decide what the build sees: the Dockerfile's own one, else the context's .dockerignore.
    for ignore_file in (dockerfile_path.with_name(dockerfile_path.name + ".dockerignore"), context / ".dockerignore"):
        if ignore_file.is_file():
            files.add(ignore_file)
    for source in [*dockerfile_sources(dockerfile_path), *extra_paths]:
        files.update(_expand(context, source, dockerfile_path))
    digest = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.relative_to(context).as_posix()):
        rel = path.relative_to(context)
        if _is_junk(rel):
            continue
        digest.update(rel.as_posix().encode() + b"\0")
        if path.is_symlink():
            digest.update(b"link\0" + os.readlink(path).encode() + b"\0")
            continue
        digest.update(b"x\0" if os.access(path, os.X_OK) else b"-\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def image_tag(content: str, build_inputs: dict[str, object]) -> str:
    """32 hex characters of sha256 over the content hash, the build inputs docker-build diffs on, and the
    provider's version: equal exactly when docker-build would not rebuild."""
    spec = {
        "content": content,
        "build": build_inputs,
        "provider": importlib.metadata.version("pulumi_docker_build"),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]


def unchanged_image_ref(previous_builds: object, role: str, content: str) -> str | None:
    """The image this stack used last time for `role`, if its content hash is `content`; else None.

    A rebuild that changes no file of the image (a new label, a provider upgrade) yields a new digest for the
    same computation; feeding the previous digest to the training job and the model keeps them as they are
    (no retraining, no rollout). `previous_builds` is the stack's own last `imageBuilds` output."""
    if not isinstance(previous_builds, dict):
        return None
    entry = previous_builds.get(role)
    if isinstance(entry, dict) and entry.get("contentHash") == content and isinstance(entry.get("ref"), str):
        return entry["ref"]
    return None


# --- ECR ---------------------------------------------------------------------------------------------------


def keep_last_policy(keep_last: int) -> str:
    """ECR lifecycle policy that expires every image beyond the newest `keep_last` (tagged or not)."""
    if keep_last < 1:
        raise ValueError(f"keep_last must be at least 1 (how many images a repository keeps), got {keep_last}")
    return json.dumps(
        {
            "rules": [
                {
                    "rulePriority": 1,
                    "description": f"keep the newest {keep_last} images",
                    "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": keep_last},
                    "action": {"type": "expire"},
                }
            ]
        }
    )


def cache_expiry_policy(days: int = CACHE_UNTAGGED_EXPIRY_DAYS) -> str:
    """Lifecycle policy of a cache repository: manifests the moving cache tag left behind expire after `days`."""
    return json.dumps(
        {
            "rules": [
                {
                    "rulePriority": 1,
                    "description": f"expire superseded build-cache manifests after {days} days",
                    "selection": {
                        "tagStatus": "untagged",
                        "countType": "sinceImagePushed",
                        "countUnit": "days",
                        "countNumber": days,
                    },
                    "action": {"type": "expire"},
                }
            ]
        }
    )


def ecr_repository_arn(image_ref: str) -> str | None:
    """`ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO@sha256:...` -> the repository's ARN; None for other registries."""
    match = _ECR_IMAGE.match(image_ref)
    if not match:
        return None
    partition = "aws-cn" if ".amazonaws.com.cn/" in image_ref else "aws"
    return f"arn:{partition}:ecr:{match['region']}:{match['account']}:repository/{match['repo']}"


class ContainerImageArgs(TypedDict):
    dockerfile: str
    """Dockerfile path relative to the build context, e.g. `training/Dockerfile`."""
    kms_key_arn: NotRequired[pulumi.Input[str]]
    """Project KMS key that encrypts the repositories (required when building)."""
    keep_last: NotRequired[int]
    """How many images the repository keeps; older ones are expired by a lifecycle policy (default 20)."""
    protect: NotRequired[bool]
    """Protect the repository against deletion, and never force-delete it while it holds images (prod)."""
    context: NotRequired[str]
    """Build context folder (default: the repository root)."""
    extra_paths: NotRequired[Sequence[str]]
    """Context paths the build reads besides the Dockerfile's COPY/ADD sources, hashed into the tag."""
    prebuilt_ref: NotRequired[str | None]
    """Use this image by digest (`REPO@sha256:...`) instead of building: no repository and no build."""
    source_url: NotRequired[str | None]
    """URL of the source repository, for the `org.opencontainers.image.source` label (omitted when None)."""


class ContainerImage(pulumi.ComponentResource):
    """ECR repository (immutable tags, scan on push, KMS, lifecycle), a build cache repository, and the image.

    The image is built for linux/amd64 with BuildKit through `pulumi-docker-build`, pushed to ECR, and
    referenced by digest, so a code change always reaches the training job or endpoint that uses it.

    Example::

        training = ContainerImage("mlplatform-dev-training", {"dockerfile": "training/Dockerfile",
                                                              "kms_key_arn": store.kms_key_arn})
        job_image = training.image_ref  # 111122223333.dkr.ecr.us-east-1.amazonaws.com/...@sha256:...
    """

    image_ref: pulumi.Output[str]
    """The image by digest, `REPOSITORY_URL@sha256:DIGEST` (or the prebuilt reference)."""
    repository_url: pulumi.Output[str] | None
    """URL of the ECR repository; None for a prebuilt image."""
    repository_arn: pulumi.Output[str] | None
    """ARN of the ECR repository holding the image (derived from a prebuilt ECR reference); None outside ECR."""
    content_hash: str | None
    """SHA-256 of the files that go into the image; None for a prebuilt image."""
    tag: str | None
    """The image tag pushed to ECR (content hash + build inputs + provider version, see `image_tag`); None for a
    prebuilt image."""

    def __init__(self, name: str, args: ContainerImageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlplatform:images:ContainerImage", name, None, opts)
        prebuilt = args.get("prebuilt_ref")
        if prebuilt is not None:
            self._use_prebuilt(prebuilt)
        else:
            self._build(name, args)
        self.register_outputs(
            {
                "image_ref": self.image_ref,
                "repository_url": self.repository_url,
                "repository_arn": self.repository_arn,
            }
        )

    def _use_prebuilt(self, ref: str) -> None:
        image_by_digest(ref)  # the rule mlplatform:images* settings use: by digest, never a tag
        self.image_ref = pulumi.Output.from_input(ref)
        self.repository_url = None
        arn = ecr_repository_arn(ref)
        self.repository_arn = pulumi.Output.from_input(arn) if arn else None
        self.content_hash = None
        self.tag = None

    def _build(self, name: str, args: ContainerImageArgs) -> None:
        kms_key_arn = args.get("kms_key_arn")
        if kms_key_arn is None:
            raise ValueError(f"{name}: kms_key_arn is required to build an image (it encrypts the ECR repositories)")
        protect = args.get("protect", False)
        context = Path(args.get("context", str(REPO_ROOT)))
        dockerfile = args["dockerfile"]
        source_url = args.get("source_url")
        # Hashed here, at program time, from the files on disk: the tag is then a plain string a preview shows,
        # and the same tree always yields the same tag (never a build-time or apply-time value).
        self.content_hash = content_hash(context, dockerfile, args.get("extra_paths", ()))
        context_location = os.path.relpath(context)
        dockerfile_location = os.path.relpath(context / dockerfile)
        build_args = {REVISION_BUILD_ARG: self.content_hash, **({SOURCE_BUILD_ARG: source_url} if source_url else {})}
        labels = {REVISION_LABEL: self.content_hash, **({SOURCE_LABEL: source_url} if source_url else {})}
        cache_to_settings = {
            "mode": str(docker_build.CacheMode.MAX.value),
            "image_manifest": True,
            "oci_media_types": True,
            "tag": CACHE_TAG,
        }
        self.tag = image_tag(
            self.content_hash,
            {
                "context": context_location,
                "dockerfile": dockerfile_location,
                "platforms": [str(PLATFORM.value)],
                "push": True,
                "build_args": build_args,
                "labels": labels,
                "cache": cache_to_settings,
            },
        )
        ignore_file = context / f"{dockerfile}.dockerignore"
        if not ignore_file.is_file():
            # docker-build rebuilds whenever anything in its context changes (its own context hash honours only
            # ignore files). With the repository root as context, an unrelated edit would rebuild and push the
            # same content tag again, which the immutable repository refuses once the new digest differs.
            pulumi.log.warn(
                f"{dockerfile}: no {dockerfile}.dockerignore beside it; add one that ignores everything but the "
                "paths the Dockerfile copies ('*' then '!<path>' lines), or unrelated edits rebuild the image "
                "and the push of its unchanged tag to the immutable repository fails",
                resource=self,
            )

        repo = aws.ecr.Repository(
            f"{name}-repo",
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration={"scan_on_push": True},
            encryption_configurations=[{"encryption_type": "KMS", "kms_key": kms_key_arn}],
            # A protected repository must never be deleted with its images; elsewhere `destroy` may empty it.
            force_delete=not protect,
            opts=pulumi.ResourceOptions(parent=self, protect=protect),
        )
        aws.ecr.LifecyclePolicy(
            f"{name}-lifecycle",
            repository=repo.name,
            policy=keep_last_policy(args.get("keep_last", 20)),
            opts=pulumi.ResourceOptions(parent=self),
        )
        # The build cache lives in its own repository because it needs a tag that moves with every build,
        # which the image repository's immutable tags forbid. Cache tags are MUTABLE; the cache holds layers
        # only (no runnable image), so it is not scanned, and it is always deletable: it can be rebuilt.
        cache_repo = aws.ecr.Repository(
            f"{name}-cache",
            image_tag_mutability="MUTABLE",
            image_scanning_configuration={"scan_on_push": False},
            encryption_configurations=[{"encryption_type": "KMS", "kms_key": kms_key_arn}],
            force_delete=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.ecr.LifecyclePolicy(
            f"{name}-cache-lifecycle",
            repository=cache_repo.name,
            policy=cache_expiry_policy(),
            opts=pulumi.ResourceOptions(parent=self),
        )

        # One token covers both repositories: they live in the same registry (account and region).
        token = aws.ecr.get_authorization_token_output(
            registry_id=repo.registry_id, opts=pulumi.InvokeOutputOptions(parent=self)
        )
        registry = repo.repository_url.apply(lambda url: url.split("/", 1)[0])
        cache_ref = pulumi.Output.concat(cache_repo.repository_url, ":", CACHE_TAG)
        # Locations relative to the working directory (Pulumi runs the program in the project folder): the
        # state then holds no machine-specific path, and CI and laptops plan the same inputs.
        image = docker_build.Image(
            f"{name}-image",
            context={"location": context_location},
            dockerfile={"location": dockerfile_location},
            platforms=[PLATFORM],
            push=True,
            tags=[pulumi.Output.concat(repo.repository_url, ":", self.tag)],
            # BASE_IMAGE is left unset on purpose: the Dockerfile's default is the public base image.
            build_args=build_args,
            labels=labels,
            registries=[{"address": registry, "username": token.user_name, "password": token.password}],
            cache_from=[{"registry": {"ref": cache_ref}}],
            # ECR accepts a registry cache only as an OCI image manifest (not a manifest list).
            cache_to=[
                {
                    "registry": {
                        "ref": cache_ref,
                        "mode": docker_build.CacheMode.MAX,
                        "image_manifest": True,
                        "oci_media_types": True,
                    }
                }
            ],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[cache_repo]),
        )
        self.image_ref = pulumi.Output.concat(repo.repository_url, "@", image.digest)
        self.repository_url = repo.repository_url
        self.repository_arn = repo.arn
