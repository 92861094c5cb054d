"""A small client for the platform's endpoint: built from the stack outputs, it invokes through boto3.

    from client import EndpointClient
    endpoint = EndpointClient.from_pulumi_stack("org/mlplatform/prod")
    predictions = endpoint.predict([[5.1, 3.5, "red"], [6.2, 2.9, "blue"]])
    predictions[0].label, predictions[0].probabilities

Timeouts are explicit, only throttling is retried (with jittered exponential backoff: a model error or a
timeout is not made better by sending the same request again), and every failure is a `ClientError`
subclass that says what went wrong.
"""

from client.endpoint import (
    MAX_PAYLOAD_BYTES,
    ClientError,
    EndpointClient,
    EndpointUnavailableError,
    InvalidRequestError,
    ModelError,
    Prediction,
    ThrottledError,
)

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "ClientError",
    "EndpointClient",
    "EndpointUnavailableError",
    "InvalidRequestError",
    "ModelError",
    "Prediction",
    "ThrottledError",
]
