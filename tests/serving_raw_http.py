"""Raw-socket helpers for the serving hardening tests: send exact bytes, read what comes back."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterable
from pathlib import Path

STATUS_LINE = re.compile(rb"HTTP/1\.1 (\d{3}) ")


def exchange(
    port: int,
    parts: bytes | Iterable[bytes],
    *,
    pause_s: float = 0.0,
    read_timeout_s: float = 5.0,
) -> bytes:
    """Send `parts` (pausing between them), then read until the server closes or stays silent for
    `read_timeout_s`. A send the server cuts short (it closed after refusing) stops sending, not the test."""
    chunks: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout_s) as sock:
        for part in [parts] if isinstance(parts, bytes) else parts:
            try:
                sock.sendall(part)
            except OSError:  # refused and closed mid-send: what it answered is still readable (or was reset)
                break
            if pause_s:
                time.sleep(pause_s)
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
    return b"".join(chunks)


def statuses(answer: bytes) -> list[int]:
    """The status of each response in `answer`, in order (responses are delimited by their Content-Length; an
    interim 100 Continue has none)."""
    codes = []
    rest = answer
    while rest:
        match = STATUS_LINE.match(rest)
        if match is None:
            raise AssertionError(f"not an HTTP/1.1 response: {rest[:200]!r}")
        codes.append(int(match.group(1)))
        head, _, rest = rest.partition(b"\r\n\r\n")
        length = header(head + b"\r\n\r\n", "content-length")
        rest = rest[int(length or 0) :]
    return codes


def header(answer: bytes, name: str) -> str | None:
    """The value of header `name` in the first response of `answer`."""
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    for line in head.split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


def worker_pids(parent: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{parent}/task/{parent}/children").read_text().split()]


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")
