"""Example application: score a CSV file against the platform's endpoint.

    pulumi stack output --json --stack org/mlplatform/prod > outputs.json
    python -m examples.app --outputs outputs.json rows.csv

`rows.csv` holds feature values in manifest order, no header. Prints one line per row: label, probabilities.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from client import ClientError, EndpointClient

BATCH_ROWS = 500  # well under the 6 MiB payload limit for tabular rows


def score_file(client: EndpointClient, rows_path: Path) -> list[str]:
    with rows_path.open(newline="") as handle:
        rows = [row for row in csv.reader(handle) if row]
    lines = []
    for start in range(0, len(rows), BATCH_ROWS):
        for p in client.predict(rows[start : start + BATCH_ROWS]):
            probs = ",".join(f"{k}={v:.4f}" for k, v in p.probabilities.items())
            lines.append(f"{p.label} {probs}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rows", type=Path)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--outputs", type=Path, help="file with `pulumi stack output --json`")
    source.add_argument("--stack", help="read the outputs with the Pulumi CLI")
    args = parser.parse_args(argv)
    try:
        client = (
            EndpointClient.from_stack_outputs(json.loads(args.outputs.read_text()))
            if args.outputs
            else EndpointClient.from_pulumi_stack(args.stack)
        )
        print("\n".join(score_file(client, args.rows)))
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
