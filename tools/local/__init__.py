"""`make local` / `python -m tools.local`: the platform's whole lifecycle on one machine, no AWS account.

Stages, each announced by a progress line (`==> [i/n] stage: ...`) and timed:

1. `environment`: the interpreter has what the stages need; earlier outputs under the output folder
   (default `build/local/`) are removed, so no checkpoint or capture of an earlier run is reused.
   (`images` follows with `--containers`: the three images built with buildah, see `runners.py`.)
2. `data`: `python -m training demo-data` lays out the breast cancer demo (455 training rows, 114 held out,
   stratified) as SageMaker's channels under `ml/input/`; `--epochs` overrides the epochs hyperparameter.
   `validate`: `python -m training validate` checks the new data: files, header, rows, and against the
   baseline of the latest *Approved* version of the local registry (`registry/`, kept between runs) with the
   monitor's checks; a violation stops the run naming file, row, column and check (tools/local/model_lifecycle.py).
3. `training`: `python -m training train` (CUDA when present, else CPU) writes `ml/model/`: the ONNX graphs,
   manifest, `evaluation.json` and the drift baseline (`baseline/statistics.json`, `constraints.json`).
   `evaluate`, `gate`, `register`: `python -m training evaluate` scores the candidate and that champion on
   the same held-out rows and writes `ml/output/gate.json`; the gate's decision and its checks are printed
   and in the report; a passing candidate becomes a `PendingManualApproval` version of `registry/`
   (`python -m tools.local.registry approve --version N` makes it the next run's champion).
4. `serving`: `python -m serving serve` on 127.0.0.1 and a free port; ready when `/ping` answers 200
   (bounded by `--ping-timeout`).
5. `replay`: the held-out rows (label removed) as CSV requests, a normal phase then a drifted one (+3 std on
   `mean radius`, `mean texture`, `worst smoothness`; why these, in `replay.py`), each exchange captured in
   SageMaker's data-capture layout under `capture/<phase>/mlplatform-local/primary/yyyy/mm/dd/hh/`. The
   server is stopped (its process group) right after, and also when anything fails or on Ctrl-C/SIGTERM.
6. `monitor`: the monitor container's entrypoint (`python -m monitoring.entrypoint`, Model Monitor's
   environment contract) over each phase's capture and time window, against the training baseline:
   `monitor/<phase>/{statistics.json, constraint_violations.json, report.html}`.
7. `plan`: `python -m tools.plan --stack dev`: what `pulumi up` would create, counted by type.
8. `report`: `report.html` (summary, then both phases' drift reports with a plot per feature, self-contained)
   and `summary.json` (every figure printed).

The run exits 0 only when every stage worked, the normal phase has no violation, the drifted phase has
violations on exactly the shifted features, and the server's port is closed again. Otherwise it exits 1
with `local: stage '<name>' failed: <why>` on stderr (and `failed_stage` in summary.json); 130 when
interrupted. `--model-dir DIR` serves an existing model directory instead of training one (reuse, and the
tests' way to make the serving stage fail).
"""
