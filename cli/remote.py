"""`anyi2v animate SHOT --daemon ADDRESS`: the shot runs on a daemon (PROTOCOL.md), here or on a GPU box.

The conditions are rendered on this side, as for a local run; the shot (with its resolved tracks) and
the composed condition image go to the daemon; its progress events drive the same progress bar; the
stored result is then fetched, each part checked against its checksum, into the same files a local
run writes. The job id is derived from the content, so running the same command again (after a
dropped connection, say) follows or fetches the job already there instead of running it twice.
Imports no torch: a laptop without the pipeline can run shots remotely.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

# Arguments that choose what the daemon runs: the daemon decides those, so they are refused here.
_LOCAL_ONLY = ("tokenizer", "device", "dtype", "cache")  # the model flags name the daemon's models (model_flags)
_BAD_INPUT_CODES = frozenset({"invalid_shot", "invalid_content", "bad_message", "too_large", "job_conflict"})


def content_job_id(
    document: dict[str, Any], condition: Any | None, control: bool, video_format: str, owner: bytes = b""
) -> str:
    """A job id that is the same exactly when the work is: the shot, the condition's bytes and the options,
    for one ``owner`` (the client's CURVE public key, empty without keys). Job ids are one namespace on a
    daemon and another key's job is invisible, so two keys asking for the same work need two ids."""
    digest = hashlib.sha256(json.dumps([document, control, video_format], sort_keys=True).encode())
    if owner:
        digest.update(b"owner:" + owner)
    if condition is not None:
        digest.update(repr(condition.shape).encode())
        digest.update(condition.tobytes())
    return "cli-" + digest.hexdigest()[:32]


def add_key_arguments(parser: Any) -> None:
    """``--server-key`` and ``--client-key``, the CURVE key files of every command that talks to a daemon
    (read back by :func:`keys_from_arguments`)."""
    parser.add_argument("--server-key", type=Path, help="the daemon's public key file (NAME.key), for CURVE")
    parser.add_argument("--client-key", type=Path, help="your secret key file (NAME.key_secret), for CURVE")


def keys_from_arguments(arguments: argparse.Namespace) -> Any:
    from anyi2v.daemon.client import ClientKeys

    if arguments.server_key is None and arguments.client_key is None:
        return None
    if arguments.server_key is None or arguments.client_key is None:
        raise ValueError(
            "CURVE needs both --server-key (the daemon's NAME.key) and --client-key (your NAME.key_secret)"
        )
    for path in (arguments.server_key, arguments.client_key):
        if not Path(path).is_file():
            raise ValueError(f"{path}: no such key file (see `anyi2v keys`)")
    try:
        return ClientKeys.from_files(arguments.server_key, arguments.client_key)
    except (ValueError, OSError) as error:
        raise ValueError(f"cannot read the keys: {error}") from None


def run_remote(arguments: argparse.Namespace, shot: Any, condition: Any) -> int:
    """Run ``shot`` on the daemon at ``arguments.daemon``; ``condition`` is the (h, w, 3) uint8 image.
    The daemon's progress events drive the same bars as a local run. Returns the exit code."""
    from anyi2v.daemon.client import DaemonClient, DaemonError, DaemonTimeoutError, ResultRefusedError
    from anyi2v.daemon.pipeline.video import VideoError, resolve_format
    from anyi2v.exits import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
    from anyi2v.progress import StageProgress
    from anyi2v.shared.document import dump_shot

    given = [f"--{name.replace('_', '-')}" for name in _LOCAL_ONLY if getattr(arguments, name, None) is not None]
    if given:
        print(f"anyi2v animate: {', '.join(given)}: the daemon chooses these; leave them out with --daemon",
              file=sys.stderr)  # fmt: skip
        return EXIT_BAD_INPUT
    out: Path = arguments.out
    try:
        out_format = resolve_format(out)
        keys = keys_from_arguments(arguments)
    except (VideoError, ValueError) as error:
        print(f"anyi2v animate: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    control = not arguments.no_control
    video_format = "mp4" if out_format == "png" else out_format
    document = json.loads(dump_shot(shot))
    sent_condition = condition if control else None
    job_id = content_job_id(document, sent_condition, control, video_format, b"" if keys is None else keys.public)

    client = None
    try:
        client = DaemonClient(arguments.daemon, keys=keys, timeout=arguments.timeout)
        hello = client.hello()
        print(f"daemon {arguments.daemon}: model {hello.model.name} on {hello.device}", file=sys.stderr)
        reply = client.submit(job_id, document, sent_condition, control=control, video_format=video_format,
                              subscribe=False)  # fmt: skip
        if not reply.created:
            print(f"job {job_id} is already on the daemon ({reply.state}): following it", file=sys.stderr)

        with StageProgress() as stages:  # closed before any message below

            def on_event(event: Any) -> None:
                if event.type == "queued" and event.content.position > 0:
                    stages.note("queued", f"{event.content.position} job(s) ahead")
                elif event.type == "progress":
                    stages(event.content.stage, event.content.done, event.content.total)

            final = client.follow(job_id, on_event)
            stages.finish()
        if final.type == "failed":
            print(f"anyi2v animate: the job failed ({final.content.reason}): {final.content.message}", file=sys.stderr)
            for hint in final.content.hints:
                print(f"  hint: {hint}", file=sys.stderr)
            return EXIT_FAILED
        if final.type == "cancelled":
            print(f"anyi2v animate: job {job_id} was cancelled on the daemon; nothing written", file=sys.stderr)
            return EXIT_FAILED
        manifest = client.manifest(job_id)
        paths = _fetch(client, job_id, manifest, out, out_format)
    except KeyboardInterrupt:
        if client is not None:
            try:
                client.cancel(job_id)
                print(f"\nanyi2v animate: cancelled job {job_id} on the daemon", file=sys.stderr)
            except (DaemonError, DaemonTimeoutError) as error:
                print(f"\nanyi2v animate: could not cancel job {job_id}: {error}", file=sys.stderr)
        return EXIT_FAILED
    except ResultRefusedError as error:  # the daemon's word on its result cannot be right: nothing kept
        print(f"anyi2v animate: {error}", file=sys.stderr)
        return EXIT_FAILED
    except DaemonError as error:
        print(f"anyi2v animate: the daemon refused the job: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT if error.code in _BAD_INPUT_CODES else EXIT_FAILED
    except DaemonTimeoutError as error:
        print(f"anyi2v animate: {error}; run the same command again to pick the job up", file=sys.stderr)
        return EXIT_FAILED
    finally:
        if client is not None:
            client.close()
    timings = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in manifest["timings"].items())
    print(f"timings (on the daemon): {timings}", file=sys.stderr)
    for path in paths:
        print(f"wrote {path}")
    return EXIT_OK


def _fetch(client: Any, job_id: str, manifest: dict[str, Any], out: Path, out_format: str) -> list[Path]:
    """The result's files where a local run writes them: the video and its shot sidecar, or a folder of
    ``frame-NNNN.png`` and ``shot.json``. ``manifest`` is the client's checked one; each part is held to
    its size and checksum there. Interrupted downloads resume."""
    from anyi2v.daemon.manifest_checks import planned_parts
    from anyi2v.daemon.pipeline.video import sidecar_path

    parts = {(part.part, part.index): part for part in planned_parts(manifest)}

    def fetch(part: str, path: Path, index: int = 0) -> Path:
        planned = parts[(part, index)]
        return Path(client.fetch_part(job_id, part, path, index, size=planned.size, sha256=planned.sha256))

    if out_format == "png":
        out.mkdir(parents=True, exist_ok=True)
        paths = [fetch("frame", out / f"frame-{index:04d}.png", index) for index in range(manifest["n_frames"])]
        return [*paths, fetch("shot", out / "shot.json")]
    out.parent.mkdir(parents=True, exist_ok=True)
    return [fetch("video", out), fetch("shot", sidecar_path(out))]
