"""Bad inputs to the training container end with a one-line reason in output/failure and a non-zero exit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.__main__ import main
from training.demo import split_frame, synthetic_frame, write_layout
from training.errors import TrainingInputError
from training.hyperparameters import Hyperparameters, parse_hyperparameters
from training.layout import MLRoot


def _layout(root: Path, hyperparameters: dict[str, str] | None = None) -> MLRoot:
    ml = MLRoot(root)
    train, validation = split_frame(synthetic_frame(200, numeric=3, categorical=1, seed=1), seed=1)
    write_layout(ml, train, validation, hyperparameters or {"epochs": "1"})
    return ml


def _fails_with(ml: MLRoot, *fragments: str) -> str:
    code = main(["train", "--ml-root", str(ml.root)])
    assert code != 0
    reason = ml.failure.read_text(encoding="utf-8")
    assert reason.count("\n") == 1, "the failure reason is one line"
    for fragment in fragments:
        assert fragment in reason
    assert not (ml.model / "manifest.json").exists()
    return reason


def test_strings_are_parsed_into_typed_values() -> None:
    hp = parse_hyperparameters(
        {
            "target": "y",
            "epochs": "7",
            "learning_rate": "0.01",
            "hidden_units": "64, 32",
            "dropout": "0",
            "device": "CPU",
            "sagemaker_region": '"eu-west-1"',
        }
    )
    assert hp == Hyperparameters(
        target="y", epochs=7, learning_rate=0.01, hidden_units=(64, 32), dropout=0.0, device="cpu"
    )


def test_json_quoted_strings_from_the_sagemaker_sdk_are_unquoted() -> None:
    assert parse_hyperparameters({"target": '"outcome"', "epochs": '"3"'}).target == "outcome"
    assert parse_hyperparameters({"epochs": '"3"'}).epochs == 3


def test_demo_hyperparameters_round_trip_through_strings() -> None:
    hp = Hyperparameters(hidden_units=(128, 64, 32), dropout=0.25)
    assert parse_hyperparameters(hp.as_strings()) == hp


@pytest.mark.parametrize(
    ("raw", "fragments"),
    [
        ({"colour": "red"}, ["'colour'", "'red'", "allowed keys", "epochs"]),
        ({"epochs": "ten"}, ["'epochs'", "'ten'", "not an integer", "[1, 100000]"]),
        ({"epochs": "0"}, ["'epochs'", "'0'", "out of range", "[1, 100000]"]),
        ({"dropout": "1.5"}, ["'dropout'", "'1.5'", "out of range", "[0, 0.9]"]),
        ({"learning_rate": "0"}, ["'learning_rate'", "'0'", "(0, 10]"]),
        ({"learning_rate": "fast"}, ["'learning_rate'", "'fast'", "not a number"]),
        ({"hidden_units": "256,x"}, ["'hidden_units'", "'256,x'", "comma-separated"]),
        ({"device": "tpu"}, ["'device'", "'tpu'", "auto, cpu, cuda"]),
        ({"cuda_graph": "yes"}, ["'cuda_graph'", "'yes'", "auto, true, false"]),
        ({"learning_rate_scaling": "cubic"}, ["'learning_rate_scaling'", "sqrt, linear, none"]),
        ({"collective_timeout_seconds": "1"}, ["'collective_timeout_seconds'", "[5, 3600]"]),
        ({"processes_per_host": "-1"}, ["'processes_per_host'", "[0, 64]"]),
        ({"categorical_columns": "a,,b"}, ["'categorical_columns'", "'a,,b'", "comma-separated column names"]),
        ({"epochs": True}, ["'epochs'", "True", "allowed: a string"]),
    ],
)
def test_bad_hyperparameter_is_rejected_naming_key_value_and_allowed(
    raw: dict[str, object], fragments: list[str]
) -> None:
    with pytest.raises(TrainingInputError) as info:
        parse_hyperparameters(raw)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_unknown_hyperparameter_fails_the_job(tmp_path: Path) -> None:
    ml = _layout(tmp_path, {"epochs": "1", "colour": "red"})
    _fails_with(ml, "hyperparameter 'colour'", "'red'", "allowed keys")


def test_wrongly_typed_hyperparameter_fails_the_job(tmp_path: Path) -> None:
    ml = _layout(tmp_path, {"epochs": "ten"})
    _fails_with(ml, "hyperparameter 'epochs'", "'ten'", "not an integer")


def test_out_of_range_hyperparameter_fails_the_job(tmp_path: Path) -> None:
    ml = _layout(tmp_path, {"dropout": "1.5"})
    _fails_with(ml, "hyperparameter 'dropout'", "'1.5'", "[0, 0.9]")


def test_hyperparameters_file_that_is_not_json_fails_the_job(tmp_path: Path) -> None:
    ml = _layout(tmp_path)
    ml.hyperparameters.write_text("{epochs: 3", encoding="utf-8")
    _fails_with(ml, "hyperparameters.json", "not valid JSON")


def test_missing_channel_fails_naming_it(tmp_path: Path) -> None:
    ml = _layout(tmp_path)
    for path in ml.channel("validation").iterdir():
        path.unlink()
    ml.channel("validation").rmdir()
    _fails_with(ml, "channel 'validation' is missing")


def test_empty_channel_fails_naming_it(tmp_path: Path) -> None:
    ml = _layout(tmp_path)
    (ml.channel("train") / "train.csv").unlink()
    _fails_with(ml, "channel 'train' is empty")


def test_malformed_csv_fails_naming_the_file(tmp_path: Path) -> None:
    ml = _layout(tmp_path)
    (ml.channel("train") / "train.csv").write_text("a,b,label\n1,2,0\n1,2,3,4,5\n", encoding="utf-8")
    _fails_with(ml, "channel 'train'", "'train.csv'", "could not be read as CSV", "line 3")


def test_unsupported_file_in_channel_fails_naming_it(tmp_path: Path) -> None:
    ml = _layout(tmp_path)
    (ml.channel("train") / "notes.json").write_text("{}", encoding="utf-8")
    _fails_with(ml, "'notes.json'", ".csv", ".parquet")


def test_absent_target_column_fails_naming_it_and_the_columns(tmp_path: Path) -> None:
    ml = _layout(tmp_path, {"target": "outcome", "epochs": "1"})
    _fails_with(ml, "target column 'outcome' not found in channel 'train'", "'num_0'", "'target' hyperparameter")


def test_forcing_an_absent_column_categorical_fails_naming_it(tmp_path: Path) -> None:
    ml = _layout(tmp_path, {"epochs": "1", "categorical_columns": "num_0,zip"})
    _fails_with(ml, "hyperparameter 'categorical_columns'", "'zip' is not a feature column", "'num_0'")


def test_missing_numeric_value_fails_naming_the_column(tmp_path: Path) -> None:
    ml = _layout(tmp_path)
    path = ml.channel("train") / "train.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    row = lines[1].split(",")
    row[header.index("num_1")] = ""
    lines[1] = ",".join(row)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _fails_with(ml, "numeric column 'num_1'", "1 missing")


def test_single_class_fails(tmp_path: Path) -> None:
    ml = _layout(tmp_path)
    path = ml.channel("train") / "train.csv"
    frame_text = path.read_text(encoding="utf-8").splitlines()
    rows = [frame_text[0]] + [",".join([*line.split(",")[:-1], "0"]) for line in frame_text[1:]]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    _fails_with(ml, "single class", "at least two")


def test_cuda_request_without_a_gpu_fails_clearly(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    ml = _layout(tmp_path, {"device": "cuda", "epochs": "1"})
    _fails_with(ml, "hyperparameter 'device' is 'cuda', but no CUDA device is usable", "refusing to train on the CPU")


def test_bad_resourceconfig_fails(tmp_path: Path) -> None:
    ml = _layout(tmp_path)
    ml.resource_config.write_text(json.dumps({"current_host": "algo-9", "hosts": ["algo-1"]}), encoding="utf-8")
    _fails_with(ml, "current_host 'algo-9' is not among hosts")


def test_a_new_run_clears_an_old_failure_file(tmp_path: Path) -> None:
    ml = _layout(tmp_path, {"epochs": "ten"})
    _fails_with(ml, "'epochs'")
    ml.hyperparameters.write_text(json.dumps({"epochs": "1"}), encoding="utf-8")
    assert main(["train", "--ml-root", str(ml.root)]) == 0
    assert not ml.failure.exists()
    assert (ml.model / "manifest.json").exists()
