"""Copying an image by digest between two registries keeps its digest (components/registry_copy.py).

The registries here are small in-process servers speaking the subset of the OCI Distribution Specification the
copy uses (opencontainers/distribution-spec `spec.md`): manifests by digest (200 with the exact bytes), blob HEAD
(200 or 404), blob GET answered with a 307 to storage that, like S3 behind ECR's pre-signed URLs, refuses a
request carrying the registry's Authorization header, and monolithic blob upload (POST -> 202 + Location, PUT
?digest= -> 201, refused when the bytes do not hash to the digest), manifest PUT -> 201.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from components.registry_copy import Registry, RegistryCopyError, copy_image

AUTH = "Basic QVdTOnRva2Vu"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class FakeRegistry:
    def __init__(self) -> None:
        self.manifests: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.blobs: dict[tuple[str, str], bytes] = {}
        self.uploads: dict[str, str] = {}
        self.upload_starts = 0
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _route(self) -> None:
                url = urlsplit(self.path)
                parts = url.path.strip("/").split("/")
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if parts[0] == "storage":  # S3: only the pre-signed URL's own auth
                    if self.headers.get("Authorization"):
                        return self._send(400, b"Only one auth mechanism allowed")
                    return self._send(200, registry.blobs[("*", parts[1])])
                if self.headers.get("Authorization") != AUTH:
                    return self._send(401)
                repo, kind, rest = parts[1], parts[2], parts[3:]
                if kind == "manifests" and self.command in ("GET", "HEAD"):
                    found = registry.manifests.get((repo, rest[0]))
                    if not found:
                        return self._send(404)
                    return self._send(200, found[0], {"Content-Type": found[1], "Docker-Content-Digest": rest[0]})
                if kind == "manifests" and self.command == "PUT":
                    if rest[0] != _digest(body):
                        return self._send(400, b"DIGEST_INVALID")
                    registry.manifests[(repo, rest[0])] = (body, self.headers["Content-Type"])
                    return self._send(201, headers={"Docker-Content-Digest": rest[0]})
                if kind == "blobs" and rest[0] != "uploads":
                    if (repo, rest[0]) not in registry.blobs:
                        return self._send(404)
                    if self.command == "HEAD":
                        return self._send(200)
                    registry.blobs[("*", rest[0])] = registry.blobs[(repo, rest[0])]
                    # Storage on another host name (as S3 is), same server.
                    storage = registry.url.replace("127.0.0.1", "localhost")
                    return self._send(307, headers={"Location": f"{storage}/storage/{rest[0]}"})
                if kind == "blobs" and self.command == "POST":
                    registry.upload_starts += 1
                    session = uuid.uuid4().hex
                    registry.uploads[session] = repo
                    return self._send(202, headers={"Location": f"/v2/{repo}/blobs/uploads/{session}"})
                if kind == "blobs" and self.command == "PUT":
                    digest = parse_qs(url.query)["digest"][0]
                    if registry.uploads.pop(rest[1], None) != repo or digest != _digest(body):
                        return self._send(400, b"DIGEST_INVALID")
                    registry.blobs[(repo, digest)] = body
                    return self._send(201)
                return self._send(405)

            do_GET = do_HEAD = do_PUT = do_POST = _route

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def push(self, repo: str) -> tuple[str, list[str]]:
        """An image index with one linux/amd64 manifest (a config and two layers); returns its digest and blobs."""
        blobs = [b'{"architecture":"amd64","os":"linux"}', b"layer-one" * 100, b"layer-two" * 50]
        for blob in blobs:
            self.blobs[(repo, _digest(blob))] = blob
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": _digest(blobs[0])},
                "layers": [
                    {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": _digest(b)}
                    for b in blobs[1:]
                ],
            }
        ).encode()
        self.manifests[(repo, _digest(manifest))] = (manifest, "application/vnd.oci.image.manifest.v1+json")
        index = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": [
                    {
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": _digest(manifest),
                        "size": len(manifest),
                        "platform": {"architecture": "amd64", "os": "linux"},
                    }
                ],
            }
        ).encode()
        self.manifests[(repo, _digest(index))] = (index, "application/vnd.oci.image.index.v1+json")
        return _digest(index), [_digest(b) for b in blobs]


@pytest.fixture
def registries() -> Iterator[tuple[FakeRegistry, FakeRegistry]]:
    dev, prod = FakeRegistry(), FakeRegistry()
    yield dev, prod
    dev.server.shutdown()
    prod.server.shutdown()


def test_copy_keeps_the_digest_and_brings_every_blob(registries: tuple[FakeRegistry, FakeRegistry]) -> None:
    dev, prod = registries
    digest, blobs = dev.push("mlplatform-dev-serving")
    copied = copy_image(
        Registry(dev.url, AUTH), "mlplatform-dev-serving", Registry(prod.url, AUTH), "mlplatform-prod-serving", digest
    )
    assert copied == digest
    assert prod.manifests[("mlplatform-prod-serving", digest)] == dev.manifests[("mlplatform-dev-serving", digest)]
    assert sorted(d for (repo, d) in prod.blobs if repo == "mlplatform-prod-serving") == sorted(blobs)
    assert prod.upload_starts == 3

    # Copying again uploads nothing: every blob is already there.
    copy_image(
        Registry(dev.url, AUTH), "mlplatform-dev-serving", Registry(prod.url, AUTH), "mlplatform-prod-serving", digest
    )
    assert prod.upload_starts == 3


def test_copy_of_an_image_the_source_no_longer_has_names_it(registries: tuple[FakeRegistry, FakeRegistry]) -> None:
    dev, prod = registries
    missing = "sha256:" + "0" * 64
    with pytest.raises(RegistryCopyError, match=rf"mlplatform-dev-serving@{missing} answered 404"):
        copy_image(Registry(dev.url, AUTH), "mlplatform-dev-serving", Registry(prod.url, AUTH), "p", missing)
