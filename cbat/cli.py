"""``cbat`` command line: one entry point, one module per subcommand in ``cbat/commands``.

Each command module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``.
Errors the user can fix (bad paths, configs, data) print one line and exit 2, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import warnings

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


def _one_line_warnings(command: str):
    shown: set[str] = set()

    def show(message, *_, **__) -> None:
        if str(message) not in shown:
            shown.add(str(message))
            print(f"cbat {command}: warning: {message}", file=sys.stderr)
    return show


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with sigterm_raises(), warnings.catch_warnings():
            # A warning is one line in the command's voice, once: the data are split before a sweep writes its
            # folder and again for each run, and the random split's leak warning came twice with a source path.
            # (Deduplicated here, not by a "once" filter: libraries imported later put their own filters first.)
            warnings.showwarning = _one_line_warnings(args.command)
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
