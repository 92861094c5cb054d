"""`EndpointClient`: encode rows, invoke the SageMaker endpoint, decode predictions, explain failures."""

from __future__ import annotations

import csv
import io
import json
import random
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.config
import botocore.exceptions

from components import outputs

# SageMaker's real-time payload limit (InvokeEndpoint request body).
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
CSV = "text/csv"
JSON = "application/json"
# Error codes SageMaker Runtime uses for throttling; only these are retried.
THROTTLING_CODES = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException"})

Row = Sequence[Any] | Mapping[str, Any]


class ClientError(Exception):
    """Base of every error this client raises."""


class InvalidRequestError(ClientError):
    """The request was refused before or by SageMaker: bad rows, payload too large, unknown endpoint."""


class ModelError(ClientError):
    """The model container answered with an error; `status` and `message` are the container's own."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"the model answered {status}: {message}")
        self.status = status
        self.message = message


class ThrottledError(ClientError):
    """Still throttled after every retry."""


class EndpointUnavailableError(ClientError):
    """The endpoint could not be reached or did not answer in time."""


@dataclass(frozen=True)
class Prediction:
    label: str
    probabilities: dict[str, float]
    value: float | None = None
    """A regression model's answer (target units; `label` is its text, `probabilities` empty); None for a
    classifier."""


def encode_rows(rows: Sequence[Row], content_type: str) -> bytes:
    """Rows as the serving container reads them: CSV lines in manifest order, or `{"instances": [...]}`."""
    if not rows:
        raise InvalidRequestError("no rows to send: pass at least one row")
    if content_type == CSV:
        if any(isinstance(r, Mapping) for r in rows):
            raise InvalidRequestError("CSV rows are lists of values in manifest order; send dicts as JSON")
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        body = buffer.getvalue().encode()
    elif content_type == JSON:
        body = json.dumps(
            {"instances": [dict(r) if isinstance(r, Mapping) else list(r) for r in rows]}, allow_nan=False
        ).encode()
    else:
        raise InvalidRequestError(f"content type {content_type!r} is not supported; use {CSV!r} or {JSON!r}")
    if len(body) > MAX_PAYLOAD_BYTES:
        raise InvalidRequestError(
            f"payload of {len(body)} bytes exceeds SageMaker's {MAX_PAYLOAD_BYTES}-byte limit; send fewer rows"
        )
    return body


def decode_predictions(body: bytes, content_type: str) -> list[Prediction]:
    """The serving container's JSON (`{"classes", "predictions": [{"label", "probabilities"}]}`, or a regression
    model's `{"predictions": [number, ...]}`) or CSV (`label,p0,p1,...`, or one number per line)."""
    try:
        if content_type.startswith(JSON):
            document = json.loads(body)
            if "classes" not in document:
                return [_regression(v) for v in document["predictions"]]
            classes = [str(c) for c in document["classes"]]
            return [
                Prediction(
                    label=str(p["label"]), probabilities=dict(zip(classes, map(float, p["probabilities"]), strict=True))
                )
                for p in document["predictions"]
            ]
        if content_type.startswith(CSV):
            predictions = []
            for line in csv.reader(io.StringIO(body.decode())):
                if line:
                    label, *probs = line
                    if not probs:
                        predictions.append(_regression(float(label)))
                        continue
                    predictions.append(
                        Prediction(label=label, probabilities={str(i): float(p) for i, p in enumerate(probs)})
                    )
            return predictions
    except (ValueError, KeyError, TypeError) as exc:
        raise ClientError(f"could not read the endpoint's {content_type} answer: {exc}") from exc
    raise ClientError(f"the endpoint answered with unsupported content type {content_type!r}")


def _regression(value: object) -> Prediction:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"a regression prediction must be a number, got {value!r}")
    return Prediction(label=repr(float(value)), probabilities={}, value=float(value))


class EndpointClient:
    """Invokes one endpoint. Build it from stack outputs so the name and region never drift from the stack."""

    def __init__(
        self,
        endpoint_name: str,
        region: str,
        *,
        connect_timeout: float = 2.0,
        read_timeout: float = 65.0,
        max_throttle_retries: int = 5,
        backoff_seconds: float = 0.2,
        runtime: Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not endpoint_name:
            raise InvalidRequestError("endpoint name is empty: read it from the stack output 'endpointName'")
        self.endpoint_name = endpoint_name
        self.max_throttle_retries = max_throttle_retries
        self.backoff_seconds = backoff_seconds
        self._sleep = sleep
        # botocore's own retries are off (total_max_attempts=1): they would also retry timeouts and 5xx.
        # The read timeout sits above the 60 s SageMaker gives the container.
        self._runtime = runtime or boto3.client(
            "sagemaker-runtime",
            region_name=region,
            config=botocore.config.Config(
                connect_timeout=connect_timeout, read_timeout=read_timeout, retries={"total_max_attempts": 1}
            ),
        )

    @classmethod
    def from_stack_outputs(cls, stack_outputs: Mapping[str, Any], **kwargs: Any) -> EndpointClient:
        missing = [k for k in (outputs.ENDPOINT_NAME, outputs.REGION) if not stack_outputs.get(k)]
        if missing:
            raise InvalidRequestError(f"stack outputs lack {', '.join(missing)}: is this an mlplatform stack?")
        return cls(str(stack_outputs[outputs.ENDPOINT_NAME]), str(stack_outputs[outputs.REGION]), **kwargs)

    @classmethod
    def from_pulumi_stack(cls, stack: str, **kwargs: Any) -> EndpointClient:
        """Read `pulumi stack output --json --stack STACK` (needs the Pulumi CLI and a login)."""
        try:
            proc = subprocess.run(
                ["pulumi", "stack", "output", "--json", "--stack", stack],
                capture_output=True,
                text=True,
                check=True,
                timeout=120,
            )
        except FileNotFoundError as exc:
            raise ClientError("the Pulumi CLI is not installed; pass the outputs with from_stack_outputs") from exc
        except subprocess.CalledProcessError as exc:
            raise ClientError(f"pulumi stack output failed for {stack!r}: {exc.stderr.strip()}") from exc
        return cls.from_stack_outputs(json.loads(proc.stdout), **kwargs)

    def predict(self, rows: Sequence[Row], *, content_type: str = CSV, accept: str = JSON) -> list[Prediction]:
        body = encode_rows(rows, content_type)
        answer = self.invoke(body, content_type=content_type, accept=accept)
        predictions = decode_predictions(answer, accept)
        if len(predictions) != len(rows):
            raise ClientError(f"sent {len(rows)} rows but the endpoint answered {len(predictions)} predictions")
        return predictions

    def invoke(self, body: bytes, *, content_type: str, accept: str) -> bytes:
        """Send one request; retry throttling only, with jittered exponential backoff."""
        for attempt in range(self.max_throttle_retries + 1):
            try:
                response = self._runtime.invoke_endpoint(
                    EndpointName=self.endpoint_name, Body=body, ContentType=content_type, Accept=accept
                )
                return response["Body"].read()
            except botocore.exceptions.ClientError as exc:
                error = exc.response.get("Error", {})
                code = error.get("Code", "")
                if code in THROTTLING_CODES and attempt < self.max_throttle_retries:
                    self._sleep(self.backoff_seconds * (2**attempt) * (0.5 + random.random() / 2))
                    continue
                raise self._translate(exc, code, error.get("Message", "")) from exc
            except (
                botocore.exceptions.ConnectTimeoutError,
                botocore.exceptions.ReadTimeoutError,
                botocore.exceptions.EndpointConnectionError,
            ) as exc:
                raise EndpointUnavailableError(f"endpoint {self.endpoint_name!r} did not answer: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _translate(self, exc: botocore.exceptions.ClientError, code: str, message: str) -> ClientError:
        if code in THROTTLING_CODES:
            return ThrottledError(
                f"endpoint {self.endpoint_name!r} still throttled after {self.max_throttle_retries} retries: {message}"
            )
        if code == "ModelError":
            status = int(exc.response.get("OriginalStatusCode", 0) or 0)
            return ModelError(status, str(exc.response.get("OriginalMessage") or message))
        if code == "ValidationError":
            return InvalidRequestError(f"SageMaker refused the request to {self.endpoint_name!r}: {message}")
        if code in ("ServiceUnavailable", "InternalFailure", "ModelNotReadyException"):
            return EndpointUnavailableError(f"endpoint {self.endpoint_name!r} unavailable ({code}): {message}")
        return ClientError(f"invoking {self.endpoint_name!r} failed ({code}): {message}")
