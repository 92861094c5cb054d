"""Command line: ``python -m monitoring analyze`` (data drift of a capture window), ``baseline`` (of a CSV),
``ground-truth`` (write labels in Model Monitor's format), ``quality`` (model quality and bias of a window),
``quality-baseline`` (from the evaluation's labels and predictions), ``merge`` (shards into one result)."""

from __future__ import annotations

import argparse
import pathlib
import sys
from collections.abc import Sequence

from monitoring.capture import TimeWindow, open_source, parse_time
from monitoring.job import analyze, default_baseline_paths, write_results
from monitoring.quality_metrics import BINARY, PROBLEM_TYPES
from monitoring.report import render_report


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m monitoring", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    a = sub.add_parser("analyze", help="check a window of data capture against a baseline")
    a.add_argument(
        "--baseline", required=True, type=pathlib.Path, help="folder with statistics.json and constraints.json"
    )
    a.add_argument("--capture", required=True, help="capture folder or s3://bucket/prefix")
    a.add_argument(
        "--output", required=True, type=pathlib.Path, help="folder for statistics.json and constraint_violations.json"
    )
    a.add_argument("--start", help="window start, ISO-8601 (inclusive)")
    a.add_argument("--end", help="window end, ISO-8601 (exclusive)")
    a.add_argument("--report", type=pathlib.Path, help="write an HTML report here")
    a.add_argument("--capture-index", default="endpointInput", choices=["endpointInput", "endpointOutput"])
    a.add_argument("--shard-output", type=pathlib.Path, help="write this shard's mergeable partial here instead")
    b = sub.add_parser("baseline", help="write statistics.json and constraints.json for a CSV with a header row")
    b.add_argument("--data", required=True, type=pathlib.Path)
    b.add_argument("--output", required=True, type=pathlib.Path)
    g = sub.add_parser("ground-truth", help="write labels (CSV: inference_id,label[,extra...]) as ground-truth JSONL")
    g.add_argument("--labels", required=True, type=pathlib.Path, help="CSV with inference_id (or event_id) and label")
    g.add_argument("--output", required=True, help="ground-truth folder or s3://bucket/prefix (hour folders below)")
    g.add_argument("--extra-column", action="append", default=[], help="also carry this column (e.g. a sensitive one)")
    g.add_argument("--uploaded", help="upload time, ISO-8601 (default now): the hour folder of the file")
    q = sub.add_parser("quality", help="model quality (and bias with --sensitive) of a window, against the baseline")
    q.add_argument("--baseline", required=True, type=pathlib.Path, help="MODEL_DIR/baseline (model_quality/ inside)")
    q.add_argument("--capture", required=True, help="capture folder or s3://bucket/prefix")
    q.add_argument("--ground-truth", required=True, help="ground-truth folder or s3://bucket/prefix")
    q.add_argument("--output", required=True, type=pathlib.Path)
    q.add_argument("--sensitive", help="sensitive attribute: a request feature or a ground-truth column")
    q.add_argument("--start", help="window start, ISO-8601 (inclusive)")
    q.add_argument("--end", help="window end, ISO-8601 (exclusive)")
    q.add_argument("--deadline", help="labels uploaded in this hour or later are late (default: none are late)")
    q.add_argument("--problem-type", choices=list(PROBLEM_TYPES), help="default: the baseline's")
    q.add_argument("--inference-attribute", default="0", help="CSV column or JSON path of the predicted label")
    q.add_argument("--probability-attribute", default="2", help="CSV column or JSON path of P(positive); '' for none")
    q.add_argument("--positive-label", default="1")
    q.add_argument("--report", type=pathlib.Path, help="write an HTML report here")
    qb = sub.add_parser("quality-baseline", help="model-quality (and bias) baseline from labels and predictions")
    qb.add_argument("--predictions", required=True, type=pathlib.Path, help="CSV: label, prediction[, score][, group]")
    qb.add_argument("--output", required=True, type=pathlib.Path, help="MODEL_DIR/baseline")
    qb.add_argument("--problem-type", choices=list(PROBLEM_TYPES), default=BINARY)
    qb.add_argument("--positive-label", default="1")
    qb.add_argument("--sensitive", help="name of the group column's attribute (column 'group' in the CSV)")
    m = sub.add_parser("merge", help="merge shard partials into statistics.json and constraint_violations.json")
    m.add_argument("--partials", required=True, type=pathlib.Path, help="folder of partial-*.json")
    m.add_argument("--baseline", required=True, type=pathlib.Path)
    m.add_argument("--output", required=True, type=pathlib.Path)
    m.add_argument("--report", type=pathlib.Path)
    return parser


def _quality(args: argparse.Namespace) -> int:
    import datetime as dt

    from monitoring.quality import (
        QualityConfig,
        analyze_quality,
        feature_names_of,
        load_quality_baseline,
        write_quality_results,
    )
    from monitoring.report import render_quality_report

    baseline = load_quality_baseline(args.baseline, want_bias=args.sensitive is not None)
    config = QualityConfig(
        problem_type=args.problem_type or baseline.problem_type,
        inference_attribute=args.inference_attribute,
        probability_attribute=args.probability_attribute or None,
        positive_label=args.positive_label,
        sensitive=args.sensitive,
        feature_names=feature_names_of(args.baseline / "statistics.json"),
    )
    window = TimeWindow(
        parse_time(args.start, "--start") if args.start else None,
        parse_time(args.end, "--end") if args.end else None,
    )
    deadline = parse_time(args.deadline, "--deadline") if args.deadline else None
    result = analyze_quality(
        open_source(args.capture),
        open_source(args.ground_truth),
        baseline,
        window,
        config,
        deadline,
        evaluation_time=dt.datetime.now(dt.UTC),
    )
    write_quality_results(result, args.output)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(render_quality_report(result), encoding="utf-8")
    print(result.message)
    return 0


def _ground_truth(args: argparse.Namespace) -> int:
    import datetime as dt
    import tempfile

    from monitoring.ground_truth import read_labels_csv, write_ground_truth_file

    records = read_labels_csv(args.labels, args.extra_column)
    uploaded = parse_time(args.uploaded, "--uploaded") if args.uploaded else dt.datetime.now(dt.UTC)
    if not args.output.startswith("s3://"):
        path = write_ground_truth_file(pathlib.Path(args.output), records, uploaded)
        print(f"wrote {len(records)} labels to {path}")
        return 0
    import boto3

    bucket, _, prefix = args.output[len("s3://") :].partition("/")
    with tempfile.TemporaryDirectory() as scratch:
        path = write_ground_truth_file(pathlib.Path(scratch), records, uploaded)
        key = "/".join(p for p in (prefix.strip("/"), str(path.relative_to(scratch))) if p)
        boto3.client("s3").upload_file(str(path), bucket, key)
    print(f"wrote {len(records)} labels to s3://{bucket}/{key}")
    return 0


def _quality_baseline(args: argparse.Namespace) -> int:
    import csv

    from monitoring.quality import write_quality_baseline

    try:
        handle = args.predictions.open(newline="", encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"predictions file {str(args.predictions)!r} does not exist") from None
    with handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        if "label" not in header or "prediction" not in header:
            raise ValueError(f"predictions file has columns {header}; it needs label, prediction[, score][, group]")
        rows = list(reader)
    if args.sensitive and "group" not in header:
        raise ValueError("--sensitive needs a 'group' column in the predictions file")
    write_quality_baseline(
        [r["label"] for r in rows],
        [r["prediction"] for r in rows],
        args.output,
        problem_type=args.problem_type,
        scores=[float(r["score"]) for r in rows] if "score" in header else None,
        positive_label=args.positive_label,
        groups=[r["group"] for r in rows] if args.sensitive else None,
        sensitive=args.sensitive,
    )
    print(f"wrote the model-quality baseline of {len(rows)} rows to {args.output}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "baseline":
            import pandas as pd

            from monitoring.baseline import write_baseline

            write_baseline(pd.read_csv(args.data), args.output)
            return 0
        if args.command == "ground-truth":
            return _ground_truth(args)
        if args.command == "quality":
            return _quality(args)
        if args.command == "quality-baseline":
            return _quality_baseline(args)
        if args.command == "merge":
            return _merge(args)
        window = TimeWindow(
            parse_time(args.start, "--start") if args.start else None,
            parse_time(args.end, "--end") if args.end else None,
        )
        stats_path, constraints_path = default_baseline_paths(args.baseline)
        result = analyze(open_source(args.capture), stats_path, constraints_path, window, args.capture_index)
        if args.shard_output:
            from monitoring.shards import partial_document, write_partial

            doc = partial_document(result.profile, result.counts, result.files_read, args.shard_output.stem, window)
            write_partial(args.shard_output, doc)
            print(f"wrote the partial of {result.counts.rows_analyzed} rows to {args.shard_output}")
            return 0
        write_results(result, args.output)
        if args.report:
            args.report.parent.mkdir(parents=True, exist_ok=True)
            args.report.write_text(render_report(result), encoding="utf-8")
        print(result.message)
        return 0
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())


def _merge(args: argparse.Namespace) -> int:
    from monitoring.job import merged_result, write_results
    from monitoring.shards import read_partials

    stats_path, constraints_path = default_baseline_paths(args.baseline)
    result = merged_result(read_partials(args.partials), stats_path, constraints_path, str(args.partials))
    write_results(result, args.output)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(render_report(result), encoding="utf-8")
    print(result.message)
    return 0
