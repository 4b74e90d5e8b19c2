"""``cbat`` command line: one entry point, one module per subcommand in ``cbat/commands``.

Each command module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``.
Errors the user can fix (bad paths, configs, data) print one line and exit 2, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from cbat.config import ConfigError
from cbat.interrupts import Terminated, sigterm_raises

COMMANDS = ("synth", "train", "sweep", "report", "attribute")
RESUMABLE = ("train", "sweep", "report")  # their folders keep finished runs and epochs


class UserError(Exception):
    """An error caused by the user's input; printed as one line."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cbat", description="CBAT Lab: why does an attention variant beat or "
                                     "trail its baseline?")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"cbat.commands.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"cbat.commands.{name}":
                raise
            continue  # command not built yet
        command = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(handler=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with sigterm_raises():
            return int(args.handler(args) or 0)
    except (UserError, ConfigError, FileNotFoundError, ValueError) as err:
        print(f"cbat {args.command}: error: {err}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Terminated) as err:
        how = "SIGTERM" if isinstance(err, Terminated) else "Ctrl-C"
        hint = "; the same command resumes where it stopped" if args.command in RESUMABLE else ""
        print(f"cbat {args.command}: interrupted ({how}){hint}", file=sys.stderr)
        return err.code if isinstance(err, Terminated) else 130


if __name__ == "__main__":
    sys.exit(main())
