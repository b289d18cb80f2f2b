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
from typing import TYPE_CHECKING

from anyi2v.exits import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK

if TYPE_CHECKING:
    from anyi2v.render.camera import Camera
    from anyi2v.shared.shot import Shot

_MAX_LISTED_NAMES = 30  # of a scene's objects, in a message


def _validate(arguments: argparse.Namespace) -> int:
    from anyi2v.shared.document import load_checked_shot
    from anyi2v.shared.errors import ShotError
    from anyi2v.shared.summary import describe_shot

    status = EXIT_OK
    for path in arguments.shots:
        try:
            shot = load_checked_shot(path, max_frames=arguments.max_frames, check_files=arguments.check_files)
            if arguments.check_files:
                _check_object_names(shot, Path(path))
        except ShotError as error:
            print(error.render(), file=sys.stderr)
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


def _check_object_names(shot: Shot, path: Path) -> None:
    """Raise ``ShotError`` for each object the shot names that its scene file does not hold (the file is
    loaded, in a child process, only when the shot names objects)."""
    from anyi2v.render.assets import AssetError, load_asset
    from anyi2v.shared.document import referenced_objects
    from anyi2v.shared.errors import Problem, ShotError

    used = referenced_objects(shot)
    if shot.scene is None or not used:
        return
    scene_path = path.parent / shot.scene.path
    try:
        known = load_asset(scene_path, up_axis=shot.scene.up_axis).names
    except AssetError as error:
        why = f"cannot load the scene to check its object names: {error}"
        raise ShotError(str(path), [Problem("scene.path", why)]) from None
    holds = f"{scene_path.name} holds: {', '.join(known[:_MAX_LISTED_NAMES])}"
    if len(known) > _MAX_LISTED_NAMES:
        holds += f" and {len(known) - _MAX_LISTED_NAMES} more"
    problems = [
        Problem(where, f"no object named {name!r} in the scene; {holds}") for where, name in used if name not in known
    ]
    if problems:
        raise ShotError(str(path), problems)


def _schema(arguments: argparse.Namespace) -> int:
    from anyi2v.shared.schema import shot_json_schema

    text = json.dumps(shot_json_schema(), indent=2) + "\n"
    if arguments.out is None:
        sys.stdout.write(text)
    else:
        Path(arguments.out).write_text(text, encoding="utf-8")
        print(f"wrote {arguments.out}")
    return EXIT_OK


def _render(arguments: argparse.Namespace) -> int:
    from anyi2v.render.assets import AssetError
    from anyi2v.render.condition import RenderError

    try:
        if arguments.input.suffix.lower() == ".json":
            return _render_shot(arguments)
        return _render_asset(arguments)
    except (AssetError, RenderError) as error:
        print(f"anyi2v render: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _render_shot(arguments: argparse.Namespace) -> int:
    from anyi2v.render.shot_conditions import render_shot_conditions, write_shot_conditions
    from anyi2v.shared.document import load_checked_shot
    from anyi2v.shared.errors import ShotError
    from anyi2v.shared.shot import DEFAULT_MAX_FRAMES

    try:
        shot = load_checked_shot(arguments.input, max_frames=DEFAULT_MAX_FRAMES)
    except ShotError as error:
        print(error.render(), file=sys.stderr)
        return EXIT_BAD_INPUT
    conditions = render_shot_conditions(shot, arguments.input.parent)
    for warning in conditions.warnings:
        print(f"anyi2v render: warning: {warning}", file=sys.stderr)
    for path in write_shot_conditions(shot, conditions, arguments.out):
        print(f"wrote {path}")
    return EXIT_OK


def _render_asset(arguments: argparse.Namespace) -> int:
    from PIL import Image

    from anyi2v.render.assets import load_asset
    from anyi2v.render.camera import Camera
    from anyi2v.render.condition import SceneView, fit_distance, to_uint8

    width, height = arguments.size
    distance = arguments.distance if arguments.distance is not None else fit_distance(arguments.fov)
    camera = Camera.orbit(arguments.azimuth, arguments.elevation, distance, fov_deg=arguments.fov)
    asset = load_asset(arguments.input, up_axis=arguments.up)
    for warning in asset.warnings:
        print(f"anyi2v render: warning: {warning}", file=sys.stderr)
    view = SceneView(asset, camera, width, height, splat_radius_px=arguments.splat_radius)
    image = view.render(arguments.render_pass)
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8(image)).save(arguments.out)
    boxes = ", ".join(f"{name} {[round(v, 3) for v in box]}" for name, box in view.object_boxes().items())
    print(f"wrote {arguments.out} ({arguments.render_pass}, {width}x{height}); boxes: {boxes}")
    print(f"scene.camera: {_render_camera_json(camera)}")  # pastes into a shot (docs/cameras.md)
    return EXIT_OK


def _render_camera_json(camera: Camera) -> str:
    """The camera as a shot's ``scene.camera`` (the normalised scene's frame), eye to 6 decimals."""
    fields = {
        "eye": [round(float(value), 6) for value in camera.eye],
        "target": [round(float(value), 6) for value in camera.target],
        "up": [round(float(value), 6) for value in camera.up],
        "fov_deg": camera.fov_deg,
    }
    return json.dumps(fields)


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT (for example 512x512)") from None
    if width <= 0 or height <= 0 or width % 8 or height % 8:
        raise argparse.ArgumentTypeError(f"{text}: width and height must be positive multiples of 8")
    return width, height


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
    from anyi2v.shared.modalities import SCENE_MODALITIES, upgraded_modality  # standard library only

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

    render = commands.add_parser(
        "render",
        help="render a mesh or point cloud, or a shot's conditions, to images",
        description=(
            "Render condition images. With a shot (.json): every condition layer, composed, to OUT/condition.png,"
            " plus each layer, the objects' frame-0 boxes (OUT/boxes.json) and every track, with those the"
            " scene's 3D motion produces, sampled per frame (OUT/tracks.json). With a mesh or point cloud:"
            " one pass to the image OUT, from an orbit camera."
        ),
    )
    render.add_argument("input", type=Path, metavar="SHOT_OR_ASSET")
    render.add_argument("--out", type=Path, required=True, help="folder (for a shot) or image file (for an asset)")
    render.add_argument(
        "--pass",
        dest="render_pass",
        default="depth",
        type=upgraded_modality,  # an older name (canny, mesh_render...) is read as the current one
        choices=SCENE_MODALITIES,
        help="what to render from an asset (default depth); the same names as a shot's condition kinds",
    )
    render.add_argument("--size", type=_size, default=(512, 512), metavar="WxH", help="image size (default 512x512)")
    render.add_argument("--azimuth", type=float, default=30.0, help="orbit azimuth in degrees (default 30)")
    render.add_argument("--elevation", type=float, default=20.0, help="orbit elevation in degrees (default 20)")
    render.add_argument("--distance", type=float, help="orbit distance (default: frame the asset)")
    render.add_argument("--fov", type=float, default=50.0, help="vertical field of view in degrees (default 50)")
    render.add_argument(
        "--up",
        choices=("y", "z", "-y", "-z"),
        default="y",
        help="the asset's up axis (default y, as glTF files are); -y for camera-frame point clouds (write --up=-y)",
    )
    render.add_argument("--splat-radius", type=int, default=1, help="point radius in pixels (default 1)")
    render.set_defaults(handler=_render)

    from anyi2v.animate import add_parser as add_animate

    add_animate(commands)

    from anyi2v.evaluate import add_parser as add_evaluate

    add_evaluate(commands)

    from anyi2v.serve import add_parsers as add_daemon

    add_daemon(commands)

    from anyi2v.library import add_parser as add_models

    add_models(commands)

    from anyi2v.status import add_parser as add_status

    add_status(commands)

    studio = commands.add_parser(
        "studio",
        help="the desktop studio: condition view, keyframed boxes, generate and play",
        description=(
            "Open the studio (PySide6). By default it starts a local daemon with the embedded toy-world model;"
            " --daemon connects to one elsewhere instead."
        ),
    )
    studio.add_argument("shot", nargs="?", type=Path, help="a shot file, mesh, point cloud or image to open")
    studio.add_argument("--daemon", metavar="ADDRESS", help="a running daemon (tcp://HOST:PORT) instead of a local one")
    studio.add_argument("--server-key", default="", help="the daemon's public key file (NAME.key)")
    studio.add_argument("--client-key", default="", help="your secret key file (NAME.key_secret)")
    studio.add_argument("--model", default="", help="the local daemon's model (default: the embedded toy-world)")
    studio.add_argument("--report-ready", type=Path, help=argparse.SUPPRESS)  # tests and benchmarks: a line once shown
    studio.set_defaults(handler=_studio)

    schema = commands.add_parser(
        "schema",
        help="print the JSON Schema of shot files",
        description="Print the Shot JSON Schema (2020-12).",
    )
    schema.add_argument("--out", metavar="FILE", help="write to FILE instead of standard output")
    schema.set_defaults(handler=_schema)
    return parser


def _studio(arguments: argparse.Namespace) -> int:
    import os

    if arguments.shot is not None and not arguments.shot.is_file():
        print(f"anyi2v studio: {arguments.shot}: no such file (a shot, mesh, point cloud or image)", file=sys.stderr)
        return EXIT_BAD_INPUT
    if sys.platform == "linux" and not any(
        os.environ.get(k) for k in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    ):
        print("anyi2v studio: no display (DISPLAY is unset); run it on a desktop, or set QT_QPA_PLATFORM=offscreen"
              " to run it headless", file=sys.stderr)  # fmt: skip
        return EXIT_BAD_INPUT
    problem = _xcb_problem()
    if problem is not None:
        print(f"anyi2v studio: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        from anyi2v.desktop.qt.app import run_studio
    except ImportError as error:
        print(f"anyi2v studio: the desktop extra is not installed ({error}): pip install 'anyi2v-studio[desktop]'",
              file=sys.stderr)  # fmt: skip
        return EXIT_FAILED
    return run_studio(arguments.shot, arguments.daemon, arguments.server_key, arguments.client_key, arguments.model,
                      arguments.report_ready)  # fmt: skip


def _xcb_problem() -> str | None:
    """What to install when Qt will start on X11 and a library its xcb plugin needs is missing (Qt would
    abort with a message that often names the wrong library), else None. Checked before Qt is loaded."""
    import os

    from anyi2v.desktop.models.display import install_advice, missing_xcb_libraries, platform_is_xcb

    if not platform_is_xcb(os.environ):
        return None
    missing = missing_xcb_libraries()
    return install_advice(missing) if missing else None


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
