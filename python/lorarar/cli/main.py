"""``lorarar``: one entry point, one module per command group.

Bad input ends with exit status 2 and one line on stderr, ``error: <file>: <what is wrong>``, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from lorarar.cli import export_cmd, fuse_cmd, generate_cmd, hypernet_cmd, lora_cmd, merge_cmd, world_cmd
from lorarar.errors import LoraError

EXIT_BAD_INPUT = 2


class UsageError(Exception):
    """A command-line mistake the user can fix (reported like bad input)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


Command = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lorarar", description=__doc__.splitlines()[0] if __doc__ else None)
    from lorarar import __version__

    parser.add_argument("--version", action="version", version=f"lorarar {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for module in (lora_cmd, merge_cmd, fuse_cmd, world_cmd, hypernet_cmd, export_cmd, generate_cmd):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        run: Command = args.run
        return run(args)
    except (LoraError, UsageError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
