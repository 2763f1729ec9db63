"""The ``identity-core`` command."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``identity-core``. The service itself is tracked by its own issue; until it lands the
    command says so plainly instead of pretending to serve."""
    parser = argparse.ArgumentParser(prog="identity-core", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the identity service")
    serve.add_argument("--config", required=True)
    parser.parse_args(argv)
    print("identity-core: the service is not built yet (see the identity core issue)", file=sys.stderr)
    return 3


if __name__ == "__main__":
    raise SystemExit(main())
