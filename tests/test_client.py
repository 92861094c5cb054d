"""The endpoint client: codecs, timeouts and retries (throttling only), clear errors; moto and Stubber."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.sagemakerruntime.models import sagemakerruntime_backends

from client import (
    ClientError,
    EndpointClient,
    EndpointUnavailableError,
    InvalidRequestError,
    ModelError,
    ThrottledError,
)
from client.endpoint import MAX_PAYLOAD_BYTES, decode_predictions, encode_rows
from examples.app import main as app_main

ANSWER = {
    "classes": ["0", "1"],
    "predictions": [{"label": "1", "probabilities": [0.25, 0.75]}, {"label": "0", "probabilities": [0.9, 0.1]}],
}
OUTPUTS = {"endpointName": "mlplatform-prod", "region": "us-east-1"}


def test_csv_rows_are_encoded_in_order_without_header() -> None:
    assert encode_rows([[1.5, "red"], [2, "blue, dark"]], "text/csv") == b'1.5,red\n2,"blue, dark"\n'


def test_json_rows_become_instances() -> None:
    body = json.loads(encode_rows([{"age": 3}, [1, 2]], "application/json"))
    assert body == {"instances": [{"age": 3}, [1, 2]]}


@pytest.mark.parametrize(
    ("rows", "content_type", "message"),
    [
        ([], "text/csv", "no rows"),
        ([{"a": 1}], "text/csv", "send dicts as JSON"),
        ([[1]], "text/xml", "not supported"),
        ([[float("nan")]], "application/json", None),
    ],
)
def test_bad_rows_are_refused_before_sending(rows: list, content_type: str, message: str | None) -> None:
    with pytest.raises((InvalidRequestError, ValueError)) as info:
        encode_rows(rows, content_type)
    if message:
        assert message in str(info.value)


def test_payload_over_six_mebibytes_is_refused_locally() -> None:
    rows = [["x" * 1000]] * (MAX_PAYLOAD_BYTES // 1000 + 10)
    with pytest.raises(InvalidRequestError, match="exceeds SageMaker's 6291456-byte limit"):
        encode_rows(rows, "text/csv")


def test_json_and_csv_answers_decode_to_predictions() -> None:
    json_predictions = decode_predictions(json.dumps(ANSWER).encode(), "application/json")
    assert json_predictions[0].label == "1"
    assert json_predictions[0].probabilities == {"0": 0.25, "1": 0.75}
    csv_predictions = decode_predictions(b"1,0.25,0.75\n0,0.9,0.1\n", "text/csv")
    assert [p.label for p in csv_predictions] == ["1", "0"]
    assert csv_predictions[1].probabilities == {"0": 0.9, "1": 0.1}


def test_garbled_answer_is_a_clear_error() -> None:
    with pytest.raises(ClientError, match="could not read the endpoint's application/json answer"):
        decode_predictions(b"{oops", "application/json")


def test_client_needs_the_stack_outputs_it_reads() -> None:
    with pytest.raises(InvalidRequestError, match="stack outputs lack endpointName"):
        EndpointClient.from_stack_outputs({"region": "us-east-1"})


@mock_aws
def test_predict_through_sagemaker_runtime_in_moto() -> None:
    backend = sagemakerruntime_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    backend.results_queue.append((json.dumps(ANSWER), "application/json", "primary", ""))
    client = EndpointClient.from_stack_outputs(OUTPUTS)
    predictions = client.predict([[1, 2], [3, 4]])
    assert [p.label for p in predictions] == ["1", "0"]


@mock_aws
def test_example_app_scores_a_csv_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    backend = sagemakerruntime_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    backend.results_queue.append((json.dumps(ANSWER), "application/json", "primary", ""))
    (tmp_path / "outputs.json").write_text(json.dumps(OUTPUTS))
    (tmp_path / "rows.csv").write_text("1,2\n3,4\n")
    assert app_main(["--outputs", str(tmp_path / "outputs.json"), str(tmp_path / "rows.csv")]) == 0
    assert capsys.readouterr().out.splitlines() == ["1 0=0.2500,1=0.7500", "0 0=0.9000,1=0.1000"]


def _stubbed(max_retries: int = 2) -> tuple[EndpointClient, Stubber, list[float]]:
    runtime = boto3.client(
        "sagemaker-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    sleeps: list[float] = []
    client = EndpointClient(
        "mlplatform-prod", "us-east-1", runtime=runtime, max_throttle_retries=max_retries, sleep=sleeps.append
    )
    return client, Stubber(runtime), sleeps


def _ok_response() -> dict:
    import io

    from botocore.response import StreamingBody

    payload = json.dumps(ANSWER).encode()
    return {"Body": StreamingBody(io.BytesIO(payload), len(payload)), "ContentType": "application/json"}


def test_throttling_is_retried_with_backoff_then_succeeds() -> None:
    client, stub, sleeps = _stubbed()
    stub.add_client_error("invoke_endpoint", service_error_code="ThrottlingException", http_status_code=400)
    stub.add_response("invoke_endpoint", _ok_response())
    with stub:
        assert len(client.predict([[1], [2]])) == 2
    assert len(sleeps) == 1
    assert 0.1 <= sleeps[0] <= 0.2


def test_throttling_gives_up_after_the_retry_budget() -> None:
    client, stub, sleeps = _stubbed(max_retries=2)
    for _ in range(3):
        stub.add_client_error("invoke_endpoint", service_error_code="ThrottlingException", http_status_code=400)
    with stub, pytest.raises(ThrottledError, match="still throttled after 2 retries"):
        client.predict([[1]])
    assert len(sleeps) == 2


def test_model_errors_are_not_retried_and_carry_the_container_message() -> None:
    client, stub, sleeps = _stubbed()
    stub.add_client_error(
        "invoke_endpoint",
        service_error_code="ModelError",
        http_status_code=424,
        service_message="Received client error (400)",
        modeled_fields={
            "OriginalStatusCode": 400,
            "OriginalMessage": '{"error": "row 1, column age: expected a number"}',
        },
    )
    with stub, pytest.raises(ModelError) as info:
        client.predict([[1]])
    assert info.value.status == 400
    assert "row 1, column age" in info.value.message
    assert sleeps == []


def test_service_unavailable_is_not_retried() -> None:
    client, stub, sleeps = _stubbed()
    stub.add_client_error("invoke_endpoint", service_error_code="ServiceUnavailable", http_status_code=503)
    with stub, pytest.raises(EndpointUnavailableError, match="unavailable"):
        client.predict([[1]])
    assert sleeps == []


def test_unknown_endpoint_is_an_invalid_request() -> None:
    client, stub, _ = _stubbed()
    stub.add_client_error(
        "invoke_endpoint",
        service_error_code="ValidationError",
        http_status_code=400,
        service_message="Endpoint mlplatform-prod of account 1 not found.",
    )
    with stub, pytest.raises(InvalidRequestError, match="not found"):
        client.predict([[1]])


def test_row_count_mismatch_is_reported() -> None:
    client, stub, _ = _stubbed()
    stub.add_response("invoke_endpoint", _ok_response())
    with stub, pytest.raises(ClientError, match="sent 3 rows but the endpoint answered 2"):
        client.predict([[1], [2], [3]])
