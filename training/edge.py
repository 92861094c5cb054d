"""The edge bundle (docs/model-contract.md "Edge bundle"): what a device needs to score without the platform.

`edge/` in the model directory holds the int8 graph (the fp32 one when there is no int8 file), manifest.json
(the model's manifest plus an `edge` section naming that graph), score.py (training/edge_score.py verbatim:
stdlib + numpy + onnxruntime only), README.md and SHA256SUMS (`sha256sum` format, checked by score.py before it
scores). `edge.tar.gz` packs the same files deterministically: sorted names, mtime 0, uid/gid 0, no owner
names, and a gzip header with mtime 0 and no file name, so the same model gives the same bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

from training.model_files import EDGE_ARCHIVE, EDGE_DIR, FP32_FILE, INT8_FILE

SCORE_SOURCE = Path(__file__).with_name("edge_score.py")
SCORE_FILE = "score.py"
SUMS_FILE = "SHA256SUMS"
README_FILE = "README.md"

_README = """# Edge bundle

A trained mlplatform model packed to score on a device with nothing beyond onnxruntime.

    pip install onnxruntime
    python score.py rows.csv        # or: ... | python score.py

Rows: CSV, no header, one row per line, the features in `manifest.json` `features` order.
Answers: one JSON line per row, `{{"label", "probabilities"}}` for a classifier, `{{"prediction"}}` for a regressor.
score.py checks every file against SHA256SUMS first and refuses a modified bundle.

Graph: `{model}` ({precision}).
"""


def _archive(directory: Path, names: list[str], target: Path) -> None:
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as tar,
    ):
        for name in sorted(names):
            data = (directory / name).read_bytes()
            info = tarfile.TarInfo(f"{EDGE_DIR}/{name}")
            info.size = len(data)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o755 if name == SCORE_FILE else 0o644
            tar.addfile(info, io.BytesIO(data))
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(target)


def write_edge_bundle(model_dir: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Write `edge/` and `edge.tar.gz` for the graphs in `model_dir`; returns the facts for evaluation.json."""
    int8 = model_dir / INT8_FILE
    model, precision = (INT8_FILE, "int8") if int8.is_file() else (FP32_FILE, "fp32")
    edge = model_dir / EDGE_DIR
    if edge.exists():
        shutil.rmtree(edge)
    edge.mkdir(parents=True)
    shutil.copyfile(model_dir / model, edge / model)
    bundle_manifest = {**manifest, "edge": {"model": model, "precision": precision}}
    (edge / "manifest.json").write_text(json.dumps(bundle_manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    shutil.copyfile(SCORE_SOURCE, edge / SCORE_FILE)
    (edge / SCORE_FILE).chmod(0o755)
    (edge / README_FILE).write_text(_README.format(model=model, precision=precision), encoding="utf-8")
    names = sorted([model, "manifest.json", SCORE_FILE, README_FILE])
    sums = "".join(f"{hashlib.sha256((edge / n).read_bytes()).hexdigest()}  {n}\n" for n in names)
    (edge / SUMS_FILE).write_text(sums, encoding="utf-8")
    _archive(edge, [*names, SUMS_FILE], model_dir / EDGE_ARCHIVE)
    return {
        "archive": EDGE_ARCHIVE,
        "model": model,
        "precision": precision,
        "bundle_bytes": (model_dir / EDGE_ARCHIVE).stat().st_size,
        "model_bytes": (edge / model).stat().st_size,
        "fp32_model_bytes": (model_dir / FP32_FILE).stat().st_size,
    }
