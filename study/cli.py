"""The `wae-study` command line: parse, dispatch, and map failures to the CONTRACT exit codes.

0 done; 2 bad input (one line naming the problem and the fix); 130 interrupted; 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from study.errors import BadInput
from trainables.data import DataError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wae-study",
        description="Ray Tune studies of beta-VAEs and WAEs on dSprites (Rubenstein et al. 2018).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = commands.add_parser("data", help="generate, verify or show the dSprites file")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    generate = data_commands.add_parser(
        "generate", help="render all 737,280 dSprites images into an HDF5 file (official layout)")
    generate.add_argument("--out", type=Path, default=None,
                          help="output .h5 file (default: $WAE_STUDY_DATA or the user cache)")
    generate.add_argument("--force", action="store_true", help="overwrite an existing file")
    verify = data_commands.add_parser(
        "verify", help="check an official .npz/.hdf5 or a generated file")
    verify.add_argument("path", type=Path)
    show = data_commands.add_parser("show", help="write a picture of sample images")
    show.add_argument("path", type=Path)
    show.add_argument("--out", type=Path, required=True, help="output .png")
    return parser


def dispatch(args: argparse.Namespace) -> int:
    if args.command == "data":
        from study import data_commands

        if args.data_command == "generate":
            return data_commands.generate(args.out, args.force)
        if args.data_command == "verify":
            return data_commands.verify(args.path)
        return data_commands.show(args.path, args.out)
    raise AssertionError(f"unhandled command {args.command}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return dispatch(args)
    except (BadInput, DataError) as err:
        print(f"wae-study: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("wae-study: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
