"""``python -m confio_kms.sandbox [--port N]``: the local AWS endpoint (see ``serve``)."""

from __future__ import annotations

import argparse
import sys

from confio_kms.sandbox.serve import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m confio_kms.sandbox",
        description="Run a local AWS endpoint (KMS and SSM, moto) and print the settings "
        "that point a project at it; Ctrl-C stops it.",
    )
    parser.add_argument("--port", type=int, default=0, help="Loopback port (default: free).")
    serve(sys.stdout, parser.parse_args(argv).port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
