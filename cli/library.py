"""`anyi2v models`: the model library (checkpoints, motion modules, LoRAs, VAEs) as a table or as JSON.

Reading the library imports no torch for safetensors files (their headers are parsed with the standard
library), so the listing is quick however large the files are.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anyi2v.exits import EXIT_BAD_INPUT, EXIT_OK

if TYPE_CHECKING:
    from anyi2v.daemon.pipeline.library import Library, LibraryEntry

COLUMNS = ("NAME", "KIND", "FAMILY", "VERSION", "SIZE", "PROBLEM")


def add_parser(commands: Any) -> None:
    models = commands.add_parser(
        "models",
        help="list the model library: checkpoints, motion modules, LoRAs, motion LoRAs, VAEs",
        description=(
            "List the models folder, laid out as AnimateDiff tools do (checkpoints/, animatediff_models/ for"
            " motion modules, animatediff_motion_lora/, loras/, vae/, and diffusers folders anywhere inside),"
            " each file recognised by its content: kind, family (SD 1.5 runs; others are listed with the"
            " reason), a motion module's version and frame limit, size, and any problem. Sorted by kind, then"
            " name; the names are what --model, --motion-module, --lora and the studio choose by."
        ),
    )
    models.add_argument(
        "--models-dir",
        type=Path,
        metavar="DIR",
        help="the models folder (default: models/ in the app's data folder, ~/.local/share/anyi2v/models on Linux)",
    )
    models.add_argument("--json", action="store_true", help="print a JSON list of entries instead of a table")
    models.set_defaults(handler=run_models)


def run_models(arguments: argparse.Namespace) -> int:
    from anyi2v.daemon.pipeline.library import LibraryError, default_models_dir, layout_hint, scan_library

    root = arguments.models_dir if arguments.models_dir is not None else default_models_dir()
    try:
        library = scan_library(root)
    except LibraryError as error:
        print(f"anyi2v models: {error}; or pass --models-dir DIR", file=sys.stderr)
        return EXIT_BAD_INPUT
    if arguments.json:
        print(json.dumps(library.as_json(), indent=2))
    elif not library.entries:
        print(f"no models in {library.root}; {layout_hint(library.root)}")
    else:
        print(library_table(library))
    return EXIT_OK


def library_table(library: Library) -> str:
    """The library as aligned columns (:data:`COLUMNS`), one entry a line, and a line of totals."""
    rows = [COLUMNS, *(_row(entry) for entry in library.entries)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(COLUMNS) - 1)]
    lines = [
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]]).rstrip()
        for row in rows
    ]
    unusable = sum(not entry.usable for entry in library.entries)
    count = len(library.entries)
    total = f"{count} {'entry' if count == 1 else 'entries'} in {library.root}"
    if unusable:
        total += f"; {unusable} cannot be used (see PROBLEM)"
    return "\n".join([*lines, "", total])


def _row(entry: LibraryEntry) -> tuple[str, ...]:
    version = entry.version or ""
    if entry.frame_limit is not None:
        version = f"{version + ', ' if version else ''}{entry.frame_limit} frames"
    problem = entry.problem or (f"note: {entry.note}" if entry.note else "")
    return (entry.name, entry.kind, entry.family or "-", version or "-", readable_size(entry.size_bytes), problem)


def readable_size(size_bytes: int, binary: bool = False) -> str:
    """A size in decimal units, as downloads are labelled (512 B, 3.4 MB, 2.1 GB), or with ``binary`` in
    units of 1024, as disks are (3.0 MiB)."""
    base, units = (1024, ("B", "KiB", "MiB", "GiB")) if binary else (1000, ("B", "KB", "MB", "GB"))
    size = float(size_bytes)
    for unit in units:
        if size < base or unit == units[-1]:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= base
    raise AssertionError("unreachable")
