"""`anyi2v animate`: run a shot end to end in this process, with the same pipeline the daemon runs
(or, with ``--daemon``, on a daemon: ``anyi2v.remote``).

Conditions are rendered and composed on this side (``anyi2v.render``), tracks derived from the
scene's 3D motion are added to the shot's own, then ``anyi2v.daemon.pipeline.generate`` runs and the
frames are written as they are decoded into a video (or PNG frames) with the shot beside it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anyi2v.daemon import TINY_RANDOM
from anyi2v.model_flags import add_model_choice_arguments, model_help

if TYPE_CHECKING:
    from anyi2v.shared.shot import Shot


LOW_MEMORY_HELP = (
    "the same computation in less GPU memory, for 8 to 12 GB cards: the text encoder and VAE wait in CPU memory,"
    " the trajectory optimisation recomputes activations, guided steps run their halves apart (slower)"
)


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """``--device`` and ``--dtype``."""
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--dtype", help="fp16, bf16 or fp32 (default: fp16 on CUDA, fp32 on CPU)")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--device`` and ``--dtype``: what :func:`load_cli_models` reads (``anyi2v eval``)."""
    parser.add_argument("--model", metavar="NAME|PATH", help=model_help())
    add_device_arguments(parser)


def load_cli_models(arguments: argparse.Namespace, shot: Shot | None = None, shot_label: str = "shot") -> Any:
    """The models the flags (``--model``, and where a command has them ``--motion-module``, ``--lora``,
    ``--motion-lora``, ``--vae``, ``--models-dir``, ``--tokenizer``; ``--device``, ``--dtype``) and else the
    shot's ``model`` section choose; raises ``ModelLoadError`` or ``ValueError``."""
    from anyi2v.daemon.pipeline.loading import load_sources
    from anyi2v.model_flags import chosen_sources

    return load_sources(
        chosen_sources(arguments, shot, shot_label),
        tokenizer=getattr(arguments, "tokenizer", None),
        device=arguments.device,
        dtype=arguments.dtype,
    )


def run_animate(arguments: argparse.Namespace) -> int:
    from anyi2v.exits import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
    from anyi2v.render.assets import AssetError
    from anyi2v.render.condition import RenderError, to_uint8
    from anyi2v.render.shot_conditions import render_shot_conditions
    from anyi2v.shared.document import dump_shot, load_checked_shot
    from anyi2v.shared.errors import ShotError

    if arguments.daemon is not None and arguments.low_memory:
        print(
            "anyi2v animate: --low-memory is the daemon's choice with --daemon (start it with"
            " `anyi2v daemon --low-memory`)",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    try:
        shot = load_checked_shot(arguments.shot, max_frames=arguments.max_frames)
    except ShotError as error:
        print(error.render(), file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        conditions = render_shot_conditions(shot, arguments.shot.parent)
    except (AssetError, RenderError) as error:
        print(f"anyi2v animate: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    shot = shot.model_copy(update={"tracks": conditions.tracks})
    if arguments.daemon is not None:
        from anyi2v.model_flags import shot_for_daemon
        from anyi2v.remote import run_remote

        try:  # the model flags name the daemon's models: they go into the shot's model section
            shot = shot_for_daemon(arguments, shot)
        except ValueError as error:
            print(f"anyi2v animate: {error}", file=sys.stderr)
            return EXIT_BAD_INPUT

        return run_remote(arguments, shot, to_uint8(conditions.image))

    from anyi2v.daemon.pipeline.generate import Cancelled, CancelToken, InputError, Progress, generate
    from anyi2v.daemon.pipeline.inversion import InversionCache
    from anyi2v.daemon.pipeline.loading import ModelLoadError
    from anyi2v.daemon.pipeline.video import VideoError, VideoWriter
    from anyi2v.model_flags import chosen_scheduler, model_error_line
    from anyi2v.progress import StageProgress

    try:
        models = load_cli_models(arguments, shot, str(arguments.shot))
    except (ModelLoadError, ValueError) as error:
        print(model_error_line("animate", error), file=sys.stderr)
        return EXIT_BAD_INPUT
    scheduler = chosen_scheduler(arguments, shot)
    if scheduler is not None and shot.model is not None and shot.model.scheduler not in (None, scheduler):
        # --scheduler overrides the shot's, as every model flag does; the shot saved beside the video says what ran
        shot = shot.model_copy(update={"model": shot.model.model_copy(update={"scheduler": scheduler})})

    print(f"model {models.identity} on {models.device} ({models.dtype})", file=sys.stderr)
    cache = InversionCache(folder=arguments.cache) if arguments.cache else InversionCache()
    token = CancelToken()
    target_folder = arguments.out if not arguments.out.suffix else arguments.out.parent
    target_folder.mkdir(parents=True, exist_ok=True)
    try:
        with (
            StageProgress() as stages,
            VideoWriter(arguments.out, shot.output.fps, shot_json=dump_shot(shot)) as writer,
        ):
            progress = Progress(
                lambda event: stages(event.stage, event.done, event.total), lambda index, frame: writer.add(frame)
            )
            result = generate(
                models,
                shot,
                to_uint8(conditions.image),
                control=not arguments.no_control,
                cache=cache,
                progress=progress,
                cancel=token,
                scheduler=scheduler,
                low_memory=arguments.low_memory,
            )
            paths = writer.close()
            stages.finish()
    except (InputError, VideoError) as error:
        print(f"anyi2v animate: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Cancelled:
        print("anyi2v animate: cancelled; nothing written", file=sys.stderr)
        return EXIT_FAILED
    timings = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in result.timings.items())
    print(f"timings: {timings}", file=sys.stderr)
    for path in paths:
        print(f"wrote {path}")
    return EXIT_OK


def add_parser(commands: Any) -> None:
    from anyi2v.remote import add_key_arguments

    animate = commands.add_parser(
        "animate",
        help="make the video of a shot in this process (or on a daemon with --daemon)",
        description=(
            "Render the shot's conditions, run AnyI2V on the model and write the video (.mp4 .webm .gif, or a"
            " folder of PNG frames) with the shot beside it. The models are the shot's model section, each part"
            " replaced by a flag given here; --model takes a library name, a diffusers SD 1.5 folder, an"
            " AnimateDiff folder or a single SD 1.5 checkpoint; with none, the embedded toy-world model runs"
            f" (128 x 128, trained on shaded primitives: see docs/toyworld); '{TINY_RANDOM}' runs a seeded"
            " tiny random model (a smoke test: its video is noise). With --daemon the shot runs on a daemon"
            " instead, with the same progress bar and the same files written here."
        ),
    )
    animate.add_argument("shot", type=Path, metavar="SHOT")
    add_device_arguments(animate)
    animate.add_argument("--low-memory", action="store_true", help=LOW_MEMORY_HELP)
    animate.add_argument("--out", type=Path, required=True, help="result.mp4, .webm, .gif or a folder for PNG frames")
    animate.add_argument("--no-control", action="store_true", help="plain AnimateDiff from the same seed (baseline)")
    animate.add_argument("--cache", type=Path, help="folder that keeps inversions between runs")
    animate.add_argument("--max-frames", type=int, default=32, help="the motion module's frame limit (default 32)")
    add_model_choice_arguments(animate, "The models this process runs, replacing the shot's choice part by part")
    remote = animate.add_argument_group(
        "on a daemon", "run the shot on `anyi2v daemon` (here or on a GPU box) instead of in this process"
    )
    remote.add_argument("--daemon", metavar="ADDRESS", help="the daemon's address, e.g. tcp://gpu-box:5557")
    add_key_arguments(remote)
    remote.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for each answer (default 30)")
    animate.set_defaults(handler=run_animate)
