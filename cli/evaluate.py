"""`anyi2v eval`: the toy-world evaluation (held-out shots, every mode, a report with figures)."""

from __future__ import annotations

import argparse
import functools
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from anyi2v.animate import add_model_arguments, load_cli_models
from anyi2v.daemon import TOY_WORLD


def run_evaluate(arguments: argparse.Namespace) -> int:
    from anyi2v.daemon.pipeline.loading import ModelLoadError
    from anyi2v.daemon.toyworld.appearance import APPEARANCE_MODES
    from anyi2v.daemon.toyworld.evaluate import ALL_MODES, MODES, held_out_shots, run_evaluation, write_report
    from anyi2v.exits import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
    from anyi2v.progress import StageProgress

    named = {"all": list(MODES), "appearance": ["no control", "AnyI2V", *APPEARANCE_MODES]}
    modes = named.get(arguments.modes) or [m.strip() for m in arguments.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in ALL_MODES]
    if unknown:
        print(f"anyi2v eval: unknown modes {unknown}; known: {', '.join(ALL_MODES)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if arguments.workers < 1:
        print(f"anyi2v eval: --workers must be at least 1, not {arguments.workers}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        models = load_cli_models(arguments)
    except (ModelLoadError, ValueError) as error:
        print(f"anyi2v eval: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    method: dict[str, Any] = {}
    if arguments.inversion_timestep is not None:
        method["inversion_timestep"] = arguments.inversion_timestep
    shots = held_out_shots(arguments.shots, arguments.size, arguments.frames, arguments.steps, method, models.device)
    print(f"{len(shots)} held-out shots, {len(modes)} modes, model {models.identity}", file=sys.stderr)

    command = "anyi2v " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    started = time.monotonic()

    def finished(results: dict[str, Any]) -> Path:  # the report so far, rewritten after each mode
        return write_report(
            arguments.out, results, shots, command, str(arguments.model or TOY_WORLD),
            time.monotonic() - started, arguments.workers,
        )  # fmt: skip

    load = functools.partial(load_cli_models, arguments) if arguments.workers > 1 else models
    try:
        with StageProgress(width=30) as stages:  # a stage per mode; ``index`` is the shot just done

            def progress(mode: str, index: int, total: int) -> None:
                stages(mode, index + 1, total)

            results = run_evaluation(load, shots, modes, progress, finished, workers=arguments.workers)
            stages.finish()
    except RuntimeError as error:
        print(f"anyi2v eval: {error}", file=sys.stderr)
        return EXIT_FAILED
    report = finished(results)
    print(report.read_text(encoding="utf-8"))
    return EXIT_OK


def add_parser(commands: Any) -> None:
    evaluate = commands.add_parser(
        "eval",
        help="evaluate trajectory control on held-out toy-world shots",
        description=(
            "Run held-out toy-world shots (scenes training never saw) in every mode (no control, AnyI2V, the"
            " paper's ablations, the SG-I2V options) through the pipeline, and write report.md, results.json,"
            " plot.png and contact_sheet.png into --out."
        ),
    )
    add_model_arguments(evaluate)
    evaluate.add_argument("--out", type=Path, required=True, help="folder for the report")
    evaluate.add_argument("--shots", type=int, default=50, help="held-out shots (default 50)")
    evaluate.add_argument(
        "--modes",
        default="all",
        help="'all' (the paper's modes), 'appearance' (which part of the injection carries the condition's look) or a"
        " comma-separated list of mode names",
    )
    evaluate.add_argument("--size", type=int, default=128, help="frame size in pixels (default 128)")
    evaluate.add_argument("--frames", type=int, default=16, help="frames per shot (default 16)")
    evaluate.add_argument("--steps", type=int, default=25, help="denoising steps (default 25)")
    evaluate.add_argument("--inversion-timestep", type=int, help="override the method's inversion timestep")
    evaluate.add_argument(
        "--workers", type=int, default=1, help="processes sharing the shots (a small model keeps a GPU busier)"
    )
    evaluate.set_defaults(handler=run_evaluate)
