"""Start MMS through sagemaker_inference.model_server.start_model_server with one worker on a given port.

python -m benchmarks.serving_mms.start MODEL_DIR WORK_DIR PORT
SageMaker's layout (/opt/ml/model) and config file (/etc/sagemaker-mms.properties) are moved under WORK_DIR.
"""

# This module runs in its own virtual environment under build/bench-envs (see bench_serving.py),
# so the project's type checker cannot see its imports.
# pyright: reportMissingImports=false

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HANDLER = "benchmarks.serving_mms.handler_service"


def main() -> None:
    model_dir, work, port = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    base = work / "opt-ml"
    base.mkdir(parents=True, exist_ok=True)
    export = work / "mms-export"
    if not (export / "model").exists():
        export.mkdir(exist_ok=True)
        # What SageMaker's framework toolkits do before starting MMS: give the model directory an MMS manifest.
        subprocess.run(
            ["model-archiver", "--model-name", "model", "--handler", HANDLER, "--model-path", str(model_dir),
             "--export-path", str(export), "--archive-format", "no-archive"],
            check=True,
        )  # fmt: skip
    if not (base / "model").exists():
        (base / "model").symlink_to(export / "model")
    os.environ["SAGEMAKER_BASE_DIR"] = str(base)  # read when sagemaker_inference.environment is imported
    os.environ["SAGEMAKER_BIND_TO_PORT"] = port
    os.environ["SAGEMAKER_MODEL_SERVER_WORKERS"] = "1"
    os.environ.setdefault("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "application/json")
    from sagemaker_inference import model_server

    model_server.MMS_CONFIG_FILE = str(work / "sagemaker-mms.properties")
    model_server.start_model_server(handler_service=HANDLER)


if __name__ == "__main__":
    main()
