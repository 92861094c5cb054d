"""Start one run of a stack's training pipeline (the model lifecycle), as `make train STACK=dev` does.

    python -m tools.train --stack dev                     # reads `pulumi stack output --json --stack dev`
    python -m tools.train --outputs outputs.json --trigger ci --champion s3://bucket/approved/v3/

The pipeline's name and region come from the stack's outputs (`trainingPipelineName`, `region`); the run is a
StartPipelineExecution with `TriggeredBy` (default `manual:<user>`) and, when given, `ChampionModelDataUrl`
(default: the pipeline's own, `latest-approved` or the stack's pin). Prints the execution ARN and how to follow it.
Exit status: 0 started, 1 AWS refused, 2 bad input (missing output, no Pulumi CLI, bad argument).
"""

from __future__ import annotations

import argparse
import getpass
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from components import outputs as contract
from tools.verify import BadInput, file_outputs, stack_outputs

EXIT_BAD_INPUT = 2


def start_run(
    client: Any, pipeline_name: str, *, trigger: str, champion: str | None = None, token: str | None = None
) -> str:
    """StartPipelineExecution with the pipeline's parameters; returns the execution ARN."""
    parameters = [{"Name": "TriggeredBy", "Value": trigger}]
    if champion is not None:
        parameters.append({"Name": "ChampionModelDataUrl", "Value": champion})
    response = client.start_pipeline_execution(
        PipelineName=pipeline_name,
        PipelineExecutionDescription=f"started by {trigger}"[:3072],
        PipelineParameters=parameters,
        ClientRequestToken=token or uuid.uuid4().hex,  # 32 to 128 characters; a retry with it starts no second run
    )
    return str(response["PipelineExecutionArn"])


def pipeline_from_outputs(data: dict[str, Any], source: str) -> tuple[str, str | None]:
    name = data.get(contract.TRAINING_PIPELINE_NAME)
    if not name:
        raise BadInput(
            f"{source} has no output {contract.TRAINING_PIPELINE_NAME!r}: the stack declares the training pipeline "
            "only with mlplatform:lifecycleEnabled true (and `pulumi up` since)"
        )
    region = data.get(contract.REGION)
    return str(name), str(region) if region else None


def main(
    argv: list[str] | None = None,
    *,
    client_factory: Callable[[str | None], Any] | None = None,
    runner: Callable[..., Any] = subprocess.run,
) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.train", description=(__doc__ or "").split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--stack", help="stack whose outputs name the pipeline (runs `pulumi stack output`)")
    source.add_argument("--outputs", type=Path, help="JSON file of stack outputs (`pulumi stack output --json`)")
    parser.add_argument("--trigger", help="the run's TriggeredBy parameter (default manual:<user>)")
    parser.add_argument("--champion", help="ChampionModelDataUrl for this run: an S3 prefix, or latest-approved")
    args = parser.parse_args(argv)
    if args.champion is not None and not (args.champion == "latest-approved" or args.champion.startswith("s3://")):
        print(
            f"train: --champion {args.champion!r}: allowed: an S3 prefix 's3://...' or latest-approved", file=sys.stderr
        )
        return EXIT_BAD_INPUT
    try:
        if args.stack:
            data, where = stack_outputs(args.stack, runner), f"stack {args.stack}"
        else:
            data, where = file_outputs(args.outputs), str(args.outputs)
        pipeline, region = pipeline_from_outputs(data, where)
    except BadInput as exc:
        print(f"train: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    trigger = args.trigger or f"manual:{getpass.getuser()}"

    import botocore.exceptions

    try:
        if client_factory is None:
            import boto3

            client = boto3.client("sagemaker", region_name=region)
        else:
            client = client_factory(region)
        arn = start_run(client, pipeline, trigger=trigger, champion=args.champion)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        print(f"train: could not start {pipeline}: {exc}", file=sys.stderr)
        return 1
    print(f"started {pipeline}: {arn}")
    print(f"follow it: aws sagemaker list-pipeline-execution-steps --pipeline-execution-arn {arn}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
