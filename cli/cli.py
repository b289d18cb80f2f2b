"""The ``anyi2v`` command: the composition root.

It may reach every package, but only lazily, inside the subcommand that needs it, so that
``anyi2v --help`` starts fast and imports nothing heavy. Exit codes: 0 success, 1 failure while
working, 2 bad input (an invalid shot, a bad argument).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def _validate(arguments: argparse.Namespace) -> int:
    from anyi2v.shared.document import load_shot, missing_files
    from anyi2v.shared.errors import ShotError
    from anyi2v.shared.summary import describe_shot

    status = EXIT_OK
    for path in arguments.shots:
        try:
            shot = load_shot(path, max_frames=arguments.max_frames)
        except ShotError as error:
            print(error.render(), file=sys.stderr)
            status = EXIT_BAD_INPUT
            continue
        if arguments.check_files:
            missing = missing_files(shot, Path(path).parent)
            if missing:
                print(ShotError(path, missing).render(), file=sys.stderr)
                status = EXIT_BAD_INPUT
                continue
        if arguments.summary:
            print(f"{path}: valid")
            print(describe_shot(shot))
        else:
            tracks = len(shot.tracks)
            print(
                f"{path}: valid ({shot.output.width}x{shot.output.height}, {shot.output.n_frames} frames, "
                f"{len(shot.conditions)} condition layer{'s' if len(shot.conditions) != 1 else ''}, "
                f"{tracks} track{'s' if tracks != 1 else ''})"
            )
    return status


def _schema(arguments: argparse.Namespace) -> int:
    from anyi2v.shared.schema import shot_json_schema

    text = json.dumps(shot_json_schema(), indent=2) + "\n"
    if arguments.out is None:
        sys.stdout.write(text)
    else:
        Path(arguments.out).write_text(text, encoding="utf-8")
        print(f"wrote {arguments.out}")
    return EXIT_OK


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    from anyi2v import __version__

    parser = argparse.ArgumentParser(
        prog="anyi2v",
        description="AnyI2V Studio: animate meshes, point clouds and structural images with directed motion.",
    )
    parser.add_argument("--version", action="version", version=f"anyi2v-studio {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    validate = commands.add_parser(
        "validate",
        help="check shot files and list every problem",
        description="Check shot files. Exit 0 when all are valid, 2 when any has problems (all are listed).",
    )
    validate.add_argument("shots", nargs="+", metavar="SHOT", help="shot file (.json)")
    validate.add_argument(
        "--max-frames",
        type=_positive_int,
        default=32,
        help="frame limit of the motion module the shot is for (default 32: AnimateDiff v2/v3)",
    )
    validate.add_argument("--summary", action="store_true", help="print what each valid shot will make")
    validate.add_argument(
        "--no-files",
        dest="check_files",
        action="store_false",
        help="do not check that the images and meshes the shot names exist",
    )
    validate.set_defaults(handler=_validate)

    schema = commands.add_parser(
        "schema",
        help="print the JSON Schema of shot files",
        description="Print the Shot JSON Schema (2020-12).",
    )
    schema.add_argument("--out", metavar="FILE", help="write to FILE instead of standard output")
    schema.set_defaults(handler=_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    try:
        status: int = arguments.handler(arguments)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    return status


if __name__ == "__main__":
    raise SystemExit(main())
