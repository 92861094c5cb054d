"""Reading data capture: payload encodings, rows per request, corrupt lines, the time window, S3."""

from __future__ import annotations

import base64
import datetime as dt
import json
import pathlib

import boto3
import pytest
from moto import mock_aws

from monitoring.analysis import WindowAnalyzer
from monitoring.capture import (
    CaptureError,
    LocalSource,
    S3Source,
    TimeWindow,
    decode_record,
    iter_lines,
    json_rows,
    parse_time,
    window_files,
)
from monitoring.capture_writer import capture_record, write_capture_file
from monitoring.statistics import FeatureStatistics, NumericAccumulator, StringAccumulator

T0 = dt.datetime(2024, 5, 1, 13, 0, tzinfo=dt.UTC)
FEATURES = [
    FeatureStatistics("a", "Fractional", 0, 0),
    FeatureStatistics("b", "Integral", 0, 0),
    FeatureStatistics("colour", "String", 0, 0),
]


def _line(record: dict) -> bytes:
    return json.dumps(record).encode()


def _analyze(lines: list[bytes], window: TimeWindow | None = None) -> WindowAnalyzer:
    analyzer = WindowAnalyzer(FEATURES, window=window)
    analyzer.add_lines(lines)
    analyzer.finish()
    return analyzer


def test_csv_payload_with_many_rows_counts_each_row() -> None:
    rows = [[1.5, 2, "red"], [2.5, 3, "blue"], [3.5, 4, "red"]]
    analyzer = _analyze([_line(capture_record(rows, T0))])
    a, b, colour = analyzer.profile.features
    assert isinstance(a, NumericAccumulator)
    assert isinstance(b, NumericAccumulator)
    assert isinstance(colour, StringAccumulator)
    assert analyzer.counts.rows_analyzed == 3
    assert a.total == pytest.approx(7.5)
    assert b.types.integral == 3
    assert colour.counts == {"red": 2, "blue": 1}


def test_json_instances_payload_is_read_positionally() -> None:
    rows = [[1.0, 2, "red"], [2.0, 5, "green"]]
    analyzer = _analyze([_line(capture_record(rows, T0, encoding="JSON"))])
    b = analyzer.profile.features[1]
    assert isinstance(b, NumericAccumulator)
    assert analyzer.counts.rows_analyzed == 2
    assert b.total == 7


def test_json_objects_are_read_by_feature_name() -> None:
    rows = [{"colour": "red", "b": 4, "a": 0.5}, {"a": 1.5, "b": 6}]
    analyzer = _analyze([_line(capture_record(rows, T0, encoding="JSON"))])
    a, _, colour = analyzer.profile.features
    assert isinstance(a, NumericAccumulator)
    assert a.total == pytest.approx(2.0)
    assert (colour.num_present, colour.num_missing) == (1, 1)


@pytest.mark.parametrize("encoding", ["CSV", "JSON"])
def test_base64_payloads_decode_by_content_type(encoding: str) -> None:
    rows = [[1.0, 2, "red"], [3.0, 4, "blue"]]
    record = capture_record(rows, T0, encoding=encoding, base64_wrap=True)
    assert record["captureData"]["endpointInput"]["encoding"] == "BASE64"
    analyzer = _analyze([_line(record)])
    a = analyzer.profile.features[0]
    assert isinstance(a, NumericAccumulator)
    assert analyzer.counts.rows_analyzed == 2
    assert a.total == pytest.approx(4.0)


def test_corrupt_lines_and_undecodable_payloads_are_counted_and_skipped() -> None:
    good = _line(capture_record([[1.0, 2, "red"]], T0))
    bad_base64 = capture_record([[1.0, 2, "red"]], T0)
    bad_base64["captureData"]["endpointInput"].update({"encoding": "BASE64", "data": "%%% not base64"})
    no_input = capture_record([[1.0, 2, "red"]], T0)
    del no_input["captureData"]["endpointInput"]
    lines = [good, b'{"captureData": {', b"[1, 2]", _line(bad_base64), _line(no_input), good]
    analyzer = _analyze(lines)
    assert analyzer.counts.rows_analyzed == 2
    assert dict(analyzer.counts.skipped) == {
        "corrupt_line": 2,
        "undecodable_payload": 1,
        "missing_capture_index": 1,
    }


def test_rows_with_the_wrong_number_of_columns_are_counted_and_skipped() -> None:
    payload = "1.0,2,red\n1.0,2\n1.0,2,red,extra\n2.0,3,blue"
    record = capture_record([[0]], T0)
    record["captureData"]["endpointInput"]["data"] = payload
    analyzer = _analyze([_line(record)])
    assert analyzer.counts.rows_seen == 4
    assert analyzer.counts.rows_analyzed == 2
    assert analyzer.counts.rows_wrong_column_count == 2
    assert dict(analyzer.counts.column_counts) == {3: 2, 2: 1, 4: 1}


def test_quoted_csv_fields_may_hold_commas() -> None:
    analyzer = _analyze([_line(capture_record([[1.0, 2, "red, dark"]], T0))])
    colour = analyzer.profile.features[2]
    assert isinstance(colour, StringAccumulator)
    assert colour.counts == {"red, dark": 1}


def test_records_outside_the_window_are_filtered_by_inference_time() -> None:
    window = TimeWindow(T0, T0 + dt.timedelta(hours=1))
    lines = [
        _line(capture_record([[1.0, 1, "red"]], T0 - dt.timedelta(seconds=1))),
        _line(capture_record([[2.0, 2, "red"]], T0)),
        _line(capture_record([[3.0, 3, "red"]], T0 + dt.timedelta(minutes=59))),
        _line(capture_record([[4.0, 4, "red"]], T0 + dt.timedelta(hours=1))),
    ]
    analyzer = _analyze(lines, window)
    assert analyzer.counts.records_outside_window == 2
    a = analyzer.profile.features[0]
    assert isinstance(a, NumericAccumulator)
    assert a.total == pytest.approx(5.0)


def test_only_the_hour_folders_of_the_window_are_listed(tmp_path: pathlib.Path) -> None:
    for hour in range(10, 16):
        write_capture_file(tmp_path, [capture_record([[1.0, 1, "red"]], T0)], T0.replace(hour=hour), name="x.jsonl")
    window = TimeWindow(T0.replace(hour=12, minute=30), T0.replace(hour=13, minute=30))
    files = window_files(LocalSource(tmp_path), window)
    assert files == ["ep/AllTraffic/2024/05/01/12/x.jsonl", "ep/AllTraffic/2024/05/01/13/x.jsonl"]


def test_the_capture_root_may_be_the_variant_folder(tmp_path: pathlib.Path) -> None:
    write_capture_file(tmp_path, [capture_record([[1.0, 1, "red"]], T0)], T0, name="x.jsonl")
    files = window_files(LocalSource(tmp_path / "ep" / "AllTraffic"), TimeWindow(T0, T0 + dt.timedelta(hours=1)))
    assert files == ["2024/05/01/13/x.jsonl"]


def test_times_parse_with_z_offsets_and_the_contract_pages_spaces() -> None:
    assert parse_time("2019-12-01T16: 20: 00Z", "end_time") == dt.datetime(2019, 12, 1, 16, 20, tzinfo=dt.UTC)
    assert parse_time("2019-12-01T18:20:00+02:00", "x") == dt.datetime(2019, 12, 1, 16, 20, tzinfo=dt.UTC)
    with pytest.raises(ValueError, match="start_time: 'yesterday' is not an ISO-8601 time"):
        parse_time("yesterday", "start_time")


def test_a_window_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(ValueError, match="must be before end"):
        TimeWindow(T0, T0 - dt.timedelta(hours=1))


def test_unknown_encoding_is_reported() -> None:
    record = capture_record([[1.0, 2, "x"]], T0)
    record["captureData"]["endpointInput"]["encoding"] = "XML"
    with pytest.raises(CaptureError, match="encoding 'XML' is not one of CSV, JSON, BASE64"):
        decode_record(_line(record))


def test_json_rows_accepts_instances_lists_and_single_rows() -> None:
    assert json_rows({"instances": [[1, 2]]}) == [[1, 2]]
    assert json_rows([[1, 2], [3, 4]]) == [[1, 2], [3, 4]]
    assert json_rows([1, 2]) == [[1, 2]]
    assert json_rows({"a": 1}) == [{"a": 1}]


@mock_aws
def test_s3_captures_are_listed_by_hour_and_streamed() -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="captures")
    for hour, value in [(12, 1.0), (13, 2.0), (14, 4.0)]:
        when = T0.replace(hour=hour, minute=5)
        body = "\n".join(json.dumps(capture_record([[value, 1, "red"]] * 2, when)) for _ in range(3))
        s3.put_object(Bucket="captures", Key=f"dc/ep/AllTraffic/{when:%Y/%m/%d/%H}/part.jsonl", Body=body.encode())
    source = S3Source("s3://captures/dc", client=s3)
    window = TimeWindow(T0.replace(hour=13), T0.replace(hour=14))
    files = window_files(source, window)
    # The end hour's folder is listed too (late deliveries), then filtered by inferenceTime.
    assert files == ["dc/ep/AllTraffic/2024/05/01/13/part.jsonl", "dc/ep/AllTraffic/2024/05/01/14/part.jsonl"]
    analyzer = WindowAnalyzer(FEATURES, window=window)
    analyzer.add_lines(iter_lines(source, files))
    analyzer.finish()
    a = analyzer.profile.features[0]
    assert isinstance(a, NumericAccumulator)
    assert analyzer.counts.rows_analyzed == 6
    assert analyzer.counts.records_outside_window == 3
    assert a.total == pytest.approx(12.0)


def test_base64_helper_round_trip() -> None:
    record = capture_record([[1, 2, "x"]], T0, base64_wrap=True)
    assert base64.b64decode(record["captureData"]["endpointInput"]["data"]).decode() == "1,2,x"


@pytest.mark.parametrize(
    ("text", "inside"),
    [
        ("2024-05-01T12:59:59.999Z", False),
        ("2024-05-01T13:00:00Z", True),
        ("2024-05-01T13:00:00.000Z", True),
        ("2024-05-01T13:59:59.999Z", True),
        ("2024-05-01T14:00:00Z", False),
        ("2024-05-01T14:00:00.001Z", False),
        ("2024-05-01T14:30:00+01:00", True),
        ("2024-05-01T13:30:00", True),
    ],
)
def test_text_times_compare_like_parsed_times(text: str, inside: bool) -> None:
    window = TimeWindow(T0, T0 + dt.timedelta(hours=1))
    assert window.contains_text(text) is inside
    assert window.contains(parse_time(text, "t")) is inside


def test_mixed_fast_and_general_records_count_the_same(tmp_path: pathlib.Path) -> None:
    window = TimeWindow(T0, T0 + dt.timedelta(hours=1))
    lines = [
        _line(capture_record([[1.0, 2, "red"]], T0)),  # the inlined path
        _line(capture_record([[1.0, 2, "red"], [2.0, 3, "blue"]], T0)),  # two rows: general path
        _line(capture_record([[1.0, 2]], T0)),  # wrong column count on the inlined path
        _line(capture_record([[1.0, 2, "red"]], T0 - dt.timedelta(hours=2))),  # outside
        b"",
        b"garbage",
    ]
    analyzer = _analyze(lines, window)
    counts = analyzer.counts
    assert (counts.lines_read, counts.records_in_window, counts.records_outside_window) == (5, 3, 1)
    assert (counts.rows_seen, counts.rows_analyzed, counts.rows_wrong_column_count) == (4, 3, 1)
    assert dict(counts.column_counts) == {3: 3, 2: 1}
    assert dict(counts.skipped) == {"corrupt_line": 1}


def test_a_one_row_csv_body_ending_in_a_newline_is_one_row() -> None:
    record = capture_record([[0]], T0)
    record["captureData"]["endpointInput"]["data"] = "1.5,2,red\r\n"
    analyzer = _analyze([_line(record)])
    colour = analyzer.profile.features[2]
    assert isinstance(colour, StringAccumulator)
    assert (analyzer.counts.rows_seen, analyzer.counts.rows_analyzed) == (1, 1)
    assert colour.counts == {"red": 1}
