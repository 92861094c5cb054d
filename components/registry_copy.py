"""Copy one image, by digest, between two registries with the OCI distribution API: the digest stays the same.

The manifest's bytes are pushed unchanged, so its digest (what SageMaker pins) is the source's. Blobs (config and
layers) are checked first and copied only when the target lacks them; an image index is copied child by child.
Endpoints and status codes follow the OCI Distribution Specification (opencontainers/distribution-spec,
`spec.md`: "Pulling manifests", "Checking if content exists", "Pushing blobs" monolithic POST-then-PUT, "Pushing
Manifests"); a blob GET may redirect to storage (ECR answers with a pre-signed S3 URL), which must be fetched
WITHOUT the registry's Authorization header (S3 refuses a second auth mechanism).

No Pulumi here: `components/image_promotion.py` runs it from a dynamic provider during `pulumi up`.
"""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
_INDEX_TYPES = frozenset(MANIFEST_TYPES[0::2])


class RegistryCopyError(RuntimeError):
    """A registry refused a step of the copy; the message names the registry, repository and digest."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass(frozen=True)
class Registry:
    """One registry endpoint: `https://ACCOUNT.dkr.ecr.REGION.amazonaws.com` and its `Authorization` value."""

    base_url: str
    authorization: str
    open: Callable[..., Any] = urllib.request.build_opener(_NoRedirect).open

    def request(
        self, method: str, path_or_url: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        url = path_or_url if "://" in path_or_url else self.base_url.rstrip("/") + path_or_url
        same_host = urllib.parse.urlsplit(url).netloc == urllib.parse.urlsplit(self.base_url).netloc
        all_headers = {**({"Authorization": self.authorization} if same_host else {}), **(headers or {})}
        req = urllib.request.Request(url, data=body, method=method, headers=all_headers)
        try:
            with self.open(req) as response:
                return response.status, dict(response.headers.items()), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers.items()), exc.read() if exc.fp else b""


def copy_image(source: Registry, source_repo: str, target: Registry, target_repo: str, digest: str) -> str:
    """Copy `source_repo@digest` to `target_repo@digest`; returns the digest (unchanged by construction)."""
    data, media_type = _get_manifest(source, source_repo, digest)
    if media_type in _INDEX_TYPES:
        for child in json.loads(data).get("manifests", []):
            copy_image(source, source_repo, target, target_repo, child["digest"])
    else:
        manifest = json.loads(data)
        for blob in [manifest["config"], *manifest.get("layers", [])]:
            _copy_blob(source, source_repo, target, target_repo, blob["digest"])
    status, _, body = target.request(
        "PUT", f"/v2/{target_repo}/manifests/{digest}", body=data, headers={"Content-Type": media_type}
    )
    if status != 201:
        raise RegistryCopyError(
            f"{target.base_url}: pushing manifest {target_repo}@{digest} answered {status}: {body!r}"
        )
    return digest


def _get_manifest(registry: Registry, repo: str, digest: str) -> tuple[bytes, str]:
    status, headers, body = registry.request(
        "GET", f"/v2/{repo}/manifests/{digest}", headers={"Accept": ", ".join(MANIFEST_TYPES)}
    )
    if status != 200:
        raise RegistryCopyError(f"{registry.base_url}: manifest {repo}@{digest} answered {status}: {body!r}")
    if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
        raise RegistryCopyError(f"{registry.base_url}: manifest {repo}@{digest} does not hash to its digest")
    media_type = _header(headers, "Content-Type") or json.loads(body).get("mediaType", "")
    return body, media_type.split(";")[0].strip()


def _copy_blob(source: Registry, source_repo: str, target: Registry, target_repo: str, digest: str) -> None:
    status, _, _ = target.request("HEAD", f"/v2/{target_repo}/blobs/{digest}")
    if status == 200:
        return
    status, headers, body = source.request("GET", f"/v2/{source_repo}/blobs/{digest}")
    if status in (301, 302, 303, 307, 308):  # storage redirect: no registry credentials there
        status, headers, body = source.request("GET", _header(headers, "Location"))
    if status != 200 or "sha256:" + hashlib.sha256(body).hexdigest() != digest:
        raise RegistryCopyError(f"{source.base_url}: blob {source_repo}@{digest} answered {status} or a bad digest")
    status, headers, _ = target.request("POST", f"/v2/{target_repo}/blobs/uploads/")
    location = _header(headers, "Location")
    if status != 202 or not location:
        raise RegistryCopyError(f"{target.base_url}: starting an upload to {target_repo} answered {status}")
    separator = "&" if "?" in location else "?"
    status, _, answer = target.request(
        "PUT",
        f"{location}{separator}digest={urllib.parse.quote(digest)}",
        body=body,
        headers={"Content-Type": "application/octet-stream"},
    )
    if status != 201:
        raise RegistryCopyError(
            f"{target.base_url}: uploading blob {digest} to {target_repo} answered {status}: {answer!r}"
        )


def _header(headers: dict[str, str], name: str) -> str:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), "")
