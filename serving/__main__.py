"""`python -m serving serve [--model-dir DIR] [--port N] [--workers N]`: the container's entrypoint; and
`python -m serving batch ...`: score a local file offline (serving/batch.py)."""

from __future__ import annotations

import os
import sys

from serving.settings import SettingsError, parse_settings
from serving.supervisor import main_serve

USAGE = (
    "usage: python -m serving serve [--model-dir DIR] [--precision fp32|int8] [--port N] [--workers N]\n"
    "       python -m serving batch --model-dir DIR --input PATH --output PATH [...] (see --help)"
)


def main(argv: list[str]) -> int:
    if argv and argv[0] == "batch":
        from serving.batch import main as batch_main  # the server's processes never load the batch tool

        return batch_main(argv[1:])
    if not argv or argv[0] != "serve":
        # SageMaker runs the image with the single argument `serve`; anything else is a mistake worth naming.
        got = argv[0] if argv else "nothing"
        print(f"{USAGE}\nexpected the command 'serve' or 'batch', got {got!r}", file=sys.stderr)
        return 2
    try:
        settings = parse_settings(argv[1:], os.environ)
    except SettingsError as bad:
        print(f"cannot serve: {bad}", file=sys.stderr)
        return 2
    main_serve(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
