"""Command line: ``python -m monitoring analyze`` for a local or S3 capture window, ``baseline`` for a CSV."""

from __future__ import annotations

import argparse
import pathlib
import sys
from collections.abc import Sequence

from monitoring.capture import TimeWindow, open_source, parse_time
from monitoring.job import analyze, default_baseline_paths, write_results
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
    b = sub.add_parser("baseline", help="write statistics.json and constraints.json for a CSV with a header row")
    b.add_argument("--data", required=True, type=pathlib.Path)
    b.add_argument("--output", required=True, type=pathlib.Path)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "baseline":
            import pandas as pd

            from monitoring.baseline import write_baseline

            write_baseline(pd.read_csv(args.data), args.output)
            return 0
        window = TimeWindow(
            parse_time(args.start, "--start") if args.start else None,
            parse_time(args.end, "--end") if args.end else None,
        )
        stats_path, constraints_path = default_baseline_paths(args.baseline)
        result = analyze(open_source(args.capture), stats_path, constraints_path, window, args.capture_index)
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
