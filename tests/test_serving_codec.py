"""decode -> predict -> encode without a server: the pure functions behind POST /invocations."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving import codec
from serving.codec import InputError
from serving.metrics import SharedMetrics
from serving.model import LoadedModel, ModelDirectoryError, ModelManifest, parse_manifest, read_manifest
from serving.settings import SettingsError, parse_settings, usable_cores
from tests.serving_model_fixture import write_model_dir


@pytest.fixture(scope="module")
def mixed_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model_dir(tmp_path_factory.mktemp("mixed"))


@pytest.fixture(scope="module")
def numeric_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_model_dir(
        tmp_path_factory.mktemp("numeric"), numeric=("a", "b"), categorical={}, classes=("no", "yes, sure", "x")
    )


@pytest.fixture(scope="module")
def mixed(mixed_dir: Path) -> LoadedModel:
    return LoadedModel(mixed_dir, "fp32")


@pytest.fixture(scope="module")
def numeric(numeric_dir: Path) -> LoadedModel:
    return LoadedModel(numeric_dir, "fp32")


def _error(excinfo: pytest.ExceptionInfo[InputError]) -> dict[str, object]:
    return excinfo.value.to_json()["error"]


# --- decoding: accepted input ---


def test_csv_rows_become_float32_numeric_and_string_categorical_inputs(mixed: LoadedModel) -> None:
    batch = codec.decode_csv(b'1,2.5,-3e2,red\r\n4,5,6,"a, b"\n', mixed.manifest)
    np.testing.assert_array_equal(batch.numeric, np.array([[1, 2.5, -300], [4, 5, 6]], dtype=np.float32))
    assert batch.numeric.dtype == np.float32
    assert batch.categorical is not None
    assert batch.categorical.tolist() == [["red"], ["a, b"]]


def test_numeric_csv_fast_path_and_python_number_syntax_agree(numeric: LoadedModel) -> None:
    plain = codec.decode_csv(b"1.5,2\n3,4\n", numeric.manifest)
    loose = codec.decode_csv(b"+1.5, .2e1\n3.,04\n", numeric.manifest)  # not JSON numbers: the checking path
    np.testing.assert_array_equal(plain.numeric, loose.numeric)
    assert plain.categorical is None


def test_json_list_rows_and_object_rows_decode_to_the_same_batch(mixed: LoadedModel) -> None:
    as_lists = codec.decode_json(b'{"instances": [[1, 2, 3, "red"]]}', mixed.manifest)
    as_objects = codec.decode_json(
        b'{"instances": [{"colour": "red", "score": 3, "income": 2, "age": 1}]}', mixed.manifest
    )
    np.testing.assert_array_equal(as_lists.numeric, as_objects.numeric)
    assert as_lists.categorical is not None and as_objects.categorical is not None
    assert as_lists.categorical.tolist() == as_objects.categorical.tolist() == [["red"]]


def test_jsonlines_accepts_lists_and_objects_one_per_line(numeric: LoadedModel) -> None:
    batch = codec.decode_jsonlines(b'[1, 2]\n{"a": 3, "b": 4}\n', numeric.manifest)
    np.testing.assert_array_equal(batch.numeric, np.array([[1, 2], [3, 4]], dtype=np.float32))


def test_numeric_json_fast_path_matches_the_checking_path(numeric: LoadedModel) -> None:
    fast = codec.decode_json(b'{"instances": [[1, 2.5], [3, 4]]}', numeric.manifest)
    # A string elsewhere in the body forces the row-by-row path; the values must come out identical.
    checked = codec.decode_json(b'{"instances": [{"a": 1, "b": 2.5}, {"b": 4, "a": 3}]}', numeric.manifest)
    np.testing.assert_array_equal(fast.numeric, checked.numeric)


def test_request_order_is_mapped_to_graph_columns_by_manifest_index() -> None:
    manifest = parse_manifest(
        {
            "format_version": 1,
            "features": [
                {"name": "colour", "type": "categorical", "input": "categorical", "index": 0, "categories": []},
                {"name": "b", "type": "numeric", "input": "numeric", "index": 1},
                {"name": "a", "type": "numeric", "input": "numeric", "index": 0},
            ],
            "classes": ["0", "1"],
            "files": {"fp32": "model.onnx", "int8": "model.int8.onnx"},
        },
        Path("manifest.json"),
    )
    batch = codec.decode_csv(b"red,2,1\n", manifest)
    np.testing.assert_array_equal(batch.numeric, np.array([[1, 2]], dtype=np.float32))
    assert batch.categorical is not None and batch.categorical.tolist() == [["red"]]


# --- decoding: refused input, each naming row, column and what was expected ---


@pytest.mark.parametrize(
    ("body", "row", "column", "feature", "got"),
    [
        (b"1,2,abc,red", 0, 2, "score", "abc"),
        (b"1,2,3,red\n1,nan,3,red", 1, 1, "income", "nan"),
        (b"1,2,3,red\n1,2,inf,red", 1, 2, "score", "inf"),
        (b"1e39,2,3,red", 0, 0, "age", "1e39"),  # finite as float64, infinite as float32
        (b"1,,3,red", 0, 1, "income", ""),
    ],
)
def test_csv_bad_numbers_name_row_column_and_feature(
    mixed: LoadedModel, body: bytes, row: int, column: int, feature: str, got: str
) -> None:
    with pytest.raises(InputError) as excinfo:
        codec.decode_csv(body, mixed.manifest)
    error = _error(excinfo)
    assert (error["row"], error["column"], error["feature"], error["got"]) == (row, column, feature, got)
    assert error["expected"] == codec.NUMBER
    assert f"row {row}, column {column} ('{feature}')" in str(error["message"])


def test_csv_wrong_feature_count_says_how_many_and_which(mixed: LoadedModel) -> None:
    with pytest.raises(InputError) as excinfo:
        codec.decode_csv(b"1,2,3,red\n1,2,3\n", mixed.manifest)
    error = _error(excinfo)
    assert error["row"] == 1
    assert error["got"] == "3 values"
    assert error["expected"] == "4 values in this order: age, income, score, colour"


def test_numeric_csv_wrong_count_is_found_after_the_fast_path_declines(numeric: LoadedModel) -> None:
    with pytest.raises(InputError) as excinfo:
        codec.decode_csv(b"1,2\n3,4\n5,6,7\n", numeric.manifest)
    assert _error(excinfo)["row"] == 2


def test_csv_blank_line_between_rows_is_refused(numeric: LoadedModel) -> None:
    with pytest.raises(InputError) as excinfo:
        codec.decode_csv(b"1,2\n\n3,4\n", numeric.manifest)
    assert _error(excinfo)["row"] == 1
    assert "empty" in str(_error(excinfo)["message"])


@pytest.mark.parametrize("decoder", [codec.decode_csv, codec.decode_json, codec.decode_jsonlines])
@pytest.mark.parametrize("body", [b"", b"\n", b"  \r\n"])
def test_empty_body_is_refused_by_every_decoder(mixed: LoadedModel, decoder: codec.Decoder, body: bytes) -> None:
    with pytest.raises(InputError) as excinfo:
        decoder(body, mixed.manifest)
    assert _error(excinfo)["message"] == "the request body is empty"


def test_csv_that_is_not_utf8_names_the_row(mixed: LoadedModel) -> None:
    with pytest.raises(InputError) as excinfo:
        codec.decode_csv(b"1,2,3,red\n1,2,3,\xff\n", mixed.manifest)
    assert _error(excinfo)["row"] == 1
    assert _error(excinfo)["expected"] == "UTF-8 text"


def test_csv_with_an_unclosed_quote_is_malformed(mixed: LoadedModel) -> None:
    with pytest.raises(InputError) as excinfo:
        codec.decode_csv(b'1,2,3,"red\n', mixed.manifest)
    assert "malformed CSV" in str(_error(excinfo)["message"])


@pytest.mark.parametrize(
    ("body", "message_part"),
    [
        (b"{not json", "malformed JSON"),
        (b"[[1, 2]]", 'key "instances"'),
        (b'{"instances": []}', "non-empty list"),
        (b'{"instances": {"a": 1}}', "non-empty list"),
        (b'{"instances": [[1, 2]], "extra": 1}', "unknown key 'extra'"),
        (b'{"instances": [3]}', "row 0: expected a list of values or an object"),
    ],
)
def test_json_document_errors_say_what_shape_is_expected(numeric: LoadedModel, body: bytes, message_part: str) -> None:
    with pytest.raises(InputError) as excinfo:
        codec.decode_json(body, numeric.manifest)
    assert message_part in str(_error(excinfo)["message"])


@pytest.mark.parametrize(
    ("instance", "column", "got"),
    [
        ([1, True], 1, "True"),  # booleans are not numbers here
        ([1, "2"], 1, "2"),  # numbers must be JSON numbers
        ([None, 2], 0, "None"),
        ([1, 1e39], 1, "1e+39"),
    ],
)
def test_json_non_numbers_in_numeric_features_are_refused(
    numeric: LoadedModel, instance: list[object], column: int, got: str
) -> None:
    body = orjson.dumps({"instances": [[0, 0], instance]})
    with pytest.raises(InputError) as excinfo:
        codec.decode_json(body, numeric.manifest)
    error = _error(excinfo)
    assert (error["row"], error["column"], error["got"]) == (1, column, got)


def test_json_object_rows_must_have_exactly_the_features(mixed: LoadedModel) -> None:
    with pytest.raises(InputError) as missing:
        codec.decode_json(b'{"instances": [{"age": 1, "income": 2, "colour": "red"}]}', mixed.manifest)
    assert (_error(missing)["feature"], _error(missing)["column"]) == ("score", 2)
    with pytest.raises(InputError) as extra:
        codec.decode_json(
            b'{"instances": [{"age": 1, "income": 2, "score": 3, "colour": "red", "zip": 1}]}', mixed.manifest
        )
    assert "unknown feature 'zip'" in str(_error(extra)["message"])


def test_json_categorical_values_must_be_strings(mixed: LoadedModel) -> None:
    with pytest.raises(InputError) as excinfo:
        codec.decode_json(b'{"instances": [[1, 2, 3, 7]]}', mixed.manifest)
    assert (_error(excinfo)["column"], _error(excinfo)["expected"]) == (3, codec.CATEGORY)


def test_jsonlines_malformed_line_is_named(numeric: LoadedModel) -> None:
    with pytest.raises(InputError) as excinfo:
        codec.decode_jsonlines(b"[1, 2]\n[1, \n", numeric.manifest)
    assert _error(excinfo)["row"] == 1


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=200))
def test_any_csv_bytes_decode_or_raise_input_error(body: bytes) -> None:
    manifest = _MIXED_MANIFEST
    refused: InputError | None = None
    try:
        batch = codec.decode_csv(body, manifest)
    except InputError as error:
        refused = error
    else:
        assert np.isfinite(batch.numeric).all()
    if refused is not None:
        assert refused.status == 400
        json.dumps(refused.to_json())  # always serialisable


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), min_size=2, max_size=2),
        min_size=1,
        max_size=20,
    )
)
def test_generated_numeric_rows_round_trip_exactly_through_csv(rows: list[list[float]]) -> None:
    body = "\n".join(",".join(repr(v) for v in row) for row in rows).encode()
    batch = codec.decode_csv(body, _NUMERIC_MANIFEST)
    np.testing.assert_array_equal(batch.numeric, np.array(rows, dtype=np.float32))


def _manifest(features: list[dict[str, object]]) -> ModelManifest:
    return parse_manifest(
        {
            "format_version": 1,
            "features": features,
            "classes": ["0", "1"],
            "files": {"fp32": "model.onnx", "int8": "model.int8.onnx"},
        },
        Path("manifest.json"),
    )


_NUMERIC_MANIFEST = _manifest(
    [{"name": n, "type": "numeric", "input": "numeric", "index": i} for i, n in enumerate("ab")]
)
_MIXED_MANIFEST = _manifest(
    [
        {"name": "a", "type": "numeric", "input": "numeric", "index": 0},
        {"name": "c", "type": "categorical", "input": "categorical", "index": 0, "categories": ["x"]},
    ]
)


# --- predicting ---


def test_probabilities_are_per_class_and_sum_to_one(mixed: LoadedModel) -> None:
    batch = codec.decode_csv(b"1,2,3,red\n40,-2,0.5,blue\n", mixed.manifest)
    probabilities = mixed.predict(batch)
    assert probabilities.shape == (2, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_unknown_categories_are_answered_through_the_shared_unknown_index(mixed: LoadedModel) -> None:
    batch = codec.decode_csv(b"1,2,3,purple\n1,2,3,orange\n1,2,3,red\n", mixed.manifest)
    purple, orange, red = mixed.predict(batch)
    np.testing.assert_array_equal(purple, orange)  # both are "unknown" to the graph
    assert not np.allclose(purple, red)


def test_int8_model_is_the_quantized_graph_and_agrees_closely_with_fp32(mixed_dir: Path) -> None:
    fp32, int8 = LoadedModel(mixed_dir, "fp32"), LoadedModel(mixed_dir, "int8")
    batch = codec.decode_csv(b"1,2,3,red\n4,5,6,blue\n", fp32.manifest)
    a, b = fp32.predict(batch), int8.predict(batch)
    assert not np.array_equal(a, b)
    np.testing.assert_allclose(a, b, atol=0.05)


# --- encoding ---


def test_json_response_has_label_probabilities_and_unknown_categories(mixed: LoadedModel) -> None:
    batch = codec.decode_csv(b"1,2,3,purple\n1,2,3,red\n", mixed.manifest)
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8]], dtype=np.float32)
    encoded = orjson.loads(codec.ResponseEncoder(mixed.manifest).encode(codec.JSON, probabilities, batch))
    assert encoded == {
        "classes": ["0", "1"],
        "predictions": [
            {"label": "0", "probabilities": [0.9, 0.1], "unknown_categories": ["colour"]},
            {"label": "1", "probabilities": [0.2, 0.8]},
        ],
    }


def test_csv_response_is_label_then_probabilities_and_quotes_labels(numeric: LoadedModel) -> None:
    batch = codec.decode_csv(b"1,2\n3,4\n", numeric.manifest)
    probabilities = np.array([[0.1, 0.7, 0.2], [0.5, 0.25, 0.25]], dtype=np.float32)
    encoded = codec.ResponseEncoder(numeric.manifest).encode(codec.CSV, probabilities, batch)
    assert encoded == b'"yes, sure",0.1,0.7,0.2\nno,0.5,0.25,0.25\n'


def test_jsonlines_response_is_one_record_per_line(numeric: LoadedModel) -> None:
    batch = codec.decode_csv(b"1,2\n", numeric.manifest)
    probabilities = np.array([[0.1, 0.2, 0.7]], dtype=np.float32)
    encoded = codec.ResponseEncoder(numeric.manifest).encode(codec.JSONLINES, probabilities, batch)
    assert encoded == b'{"label":"x","probabilities":[0.1,0.2,0.7]}\n'


def test_non_finite_probabilities_are_the_clients_input_error(numeric: LoadedModel) -> None:
    with pytest.raises(InputError) as excinfo:
        codec.check_finite(np.array([[0.5, 0.5, 0.0], [np.nan, 0.5, 0.5]], dtype=np.float32), numeric.manifest)
    assert _error(excinfo)["row"] == 1


# --- content negotiation ---


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("text/csv", codec.CSV),
        ("text/csv; charset=utf-8", codec.CSV),
        ("Application/JSON", codec.JSON),
        ("application/jsonlines", codec.JSONLINES),
        ("application/x-jsonlines", codec.JSONLINES),
        ("text/csv; charset=latin-1", None),
        ("application/xml", None),
        (None, None),
    ],
)
def test_request_content_types(content_type: str | None, expected: str | None) -> None:
    assert codec.request_type(content_type) == expected


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, codec.JSON),
        ("*/*", codec.JSON),
        ("application/json", codec.JSON),
        ("text/csv", codec.CSV),
        ("text/*", codec.CSV),
        ("application/jsonlines", codec.JSONLINES),
        ("text/html, text/csv;q=0.5, application/json;q=0.9", codec.JSON),
        ("application/json;q=0, text/csv", codec.CSV),
        ("text/html", None),
        ("image/png, application/xml", None),
    ],
)
def test_accept_negotiation(accept: str | None, expected: str | None) -> None:
    assert codec.response_type(accept) == expected


# --- model directory and settings ---


def test_manifest_errors_name_the_file_and_field(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({"format_version": 2}))
    with pytest.raises(ModelDirectoryError, match=r"manifest.json: format_version: 2 is not supported"):
        read_manifest(tmp_path)
    with pytest.raises(ModelDirectoryError, match=r"manifest\.json is missing"):
        read_manifest(tmp_path / "nowhere")


def test_missing_model_file_is_named(mixed_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_bytes((mixed_dir / "manifest.json").read_bytes())
    with pytest.raises(ModelDirectoryError, match=r"model\.int8\.onnx: the int8 model file"):
        LoadedModel(tmp_path, "int8")


def test_precision_comes_from_the_environment_and_is_checked() -> None:
    assert parse_settings([], {"MLPLATFORM_MODEL_PRECISION": "int8"}).precision == "int8"
    with pytest.raises(
        SettingsError, match=r"MLPLATFORM_MODEL_PRECISION='fp16' is not valid: expected one of fp32, int8"
    ):
        parse_settings([], {"MLPLATFORM_MODEL_PRECISION": "fp16"})


def test_defaults_follow_the_sagemaker_contract_and_flags_win() -> None:
    defaults = parse_settings([], {})
    assert (defaults.model_dir, defaults.port, defaults.precision) == (Path("/opt/ml/model"), 8080, "fp32")
    assert defaults.workers == usable_cores()
    flagged = parse_settings(
        ["--model-dir", "/m", "--port", "9000", "--workers", "3"],
        {"MLPLATFORM_MODEL_DIR": "/env", "MLPLATFORM_SERVING_PORT": "1", "MLPLATFORM_SERVING_WORKERS": "7"},
    )
    assert (flagged.model_dir, flagged.port, flagged.workers) == (Path("/m"), 9000, 3)
    with pytest.raises(SettingsError, match=r"workers='0' is out of range"):
        parse_settings(["--workers", "0"], {})


# --- metrics ---


def test_metrics_render_counts_and_a_cumulative_histogram() -> None:
    metrics = SharedMetrics(workers=2)
    metrics.bind(1)
    metrics.record("/invocations", 200, 0.0004, rows=3)
    metrics.record("/invocations", 200, 0.003, rows=1)
    metrics.record("/invocations", 400, 0.0001)
    text = metrics.render().decode()
    assert 'mlplatform_serving_requests_total{path="/invocations",status="200"} 2' in text
    assert 'mlplatform_serving_requests_total{path="/invocations",status="400"} 1' in text
    assert 'mlplatform_serving_request_duration_seconds_bucket{path="/invocations",le="0.0005"} 2' in text
    assert 'mlplatform_serving_request_duration_seconds_bucket{path="/invocations",le="+Inf"} 3' in text
    assert "mlplatform_serving_rows_total 4" in text
    total = next(
        line
        for line in text.splitlines()
        if line.startswith('mlplatform_serving_request_duration_seconds_sum{path="/invocations"}')
    )
    assert math.isclose(float(total.split()[-1]), 0.0035)
