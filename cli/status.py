"""`anyi2v status`: is a daemon up, and what is it doing (device, model, queue, disk)?

For users ("is the GPU box free?") and for service managers: the daemon image's HEALTHCHECK runs it.
Exit 0 when the daemon answered, 1 when none answered in time (or it answered with an error), 2 for bad
arguments (a missing key file). Imports no torch: it runs on a laptop that has no pipeline.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from anyi2v.exits import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
from anyi2v.library import readable_size


def add_parser(commands: Any) -> None:
    from anyi2v.daemon import DEFAULT_ADDRESS
    from anyi2v.remote import add_key_arguments

    status = commands.add_parser(
        "status",
        help="ask a daemon what it runs on, what it has loaded and how long its queue is",
        description=(
            "Ask a daemon for its status: server and protocol, device, model (the default and what its worker"
            " holds), queue (jobs waiting, the running one), uptime and disk use. Exit 0 when it answered, 1"
            " when no daemon answered within --timeout, 2 for bad arguments."
        ),
    )
    status.add_argument("--daemon", metavar="ADDRESS", default=DEFAULT_ADDRESS, help=f"default {DEFAULT_ADDRESS}")
    add_key_arguments(status)
    status.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each answer (default 10)")
    status.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    status.set_defaults(handler=run_status)


def run_status(arguments: argparse.Namespace) -> int:
    import zmq

    from anyi2v.daemon.client import DaemonClient, DaemonError, DaemonTimeoutError
    from anyi2v.remote import keys_from_arguments

    if not arguments.timeout > 0:
        print(f"anyi2v status: --timeout must be above 0 seconds, got {arguments.timeout}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        keys = keys_from_arguments(arguments)
    except ValueError as error:
        print(f"anyi2v status: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        client = DaemonClient(arguments.daemon, keys=keys, timeout=arguments.timeout, name="anyi2v-status")
    except zmq.ZMQError as error:  # a malformed address
        print(f"anyi2v status: cannot connect to {arguments.daemon!r}: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        hello = client.hello()
        server = client.status().server
        models = client.models()
    except DaemonTimeoutError as error:
        print(f"anyi2v status: no daemon answered: {error}", file=sys.stderr)
        return EXIT_FAILED
    except DaemonError as error:
        print(f"anyi2v status: the daemon at {arguments.daemon} answered with an error: {error}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        client.close()
    report = {
        "address": arguments.daemon,
        "server": hello.server,
        "protocol": hello.protocol,
        "device": hello.device,
        "model": {"name": hello.model.name, "kind": hello.model.kind},
        "default": models.default.model_dump(mode="json"),
        "loaded": None if models.loaded is None else models.loaded.model_dump(mode="json"),
        "library": {"folder": models.folder, "models": len(models.models) + models.more, "problem": models.problem},
        "queue": {"queued": server.queued, "running": server.running},
        "uptime_seconds": server.uptime_seconds,
        "disk": {"used_bytes": server.disk_bytes, "cap_bytes": server.disk_cap_bytes},
    }
    print(json.dumps(report, indent=2) if arguments.json else "\n".join(status_lines(report)))
    return EXIT_OK


def status_lines(report: dict[str, Any]) -> list[str]:
    """The status as aligned ``label  value`` lines."""
    queue = report["queue"]
    running = f"running {queue['running']}" if queue["running"] else "nothing running"
    library = report["library"]
    rows = [
        ("daemon", f"{report['address']} ({report['server']}, protocol {report['protocol']})"),
        ("device", report["device"]),
        ("model", f"{report['model']['name']} ({report['model']['kind']})"),
        ("loaded", combination(report["loaded"]) if report["loaded"] else "nothing yet (loads with the first job)"),
        ("library", library["problem"] or f"{library['models']} models in {library['folder']}"),
        ("queue", f"{queue['queued']} waiting, {running}"),
        ("uptime", duration(report["uptime_seconds"])),
        ("disk", " of ".join(readable_size(report["disk"][key], binary=True) for key in ("used_bytes", "cap_bytes"))),
    ]
    width = max(len(label) for label, _ in rows)
    return [f"{label.ljust(width)}  {value}" for label, value in rows]


def combination(models: dict[str, Any]) -> str:
    """'checkpoint rv51, motion module mm_v3, LoRAs ink:0.6' from a model combination's JSON."""
    parts = [f"{label} {models[key]}" for key, label in (("checkpoint", "checkpoint"), ("motion_module",
             "motion module"), ("vae", "VAE"), ("scheduler", "sampler")) if models.get(key)]  # fmt: skip
    for key, label in (("loras", "LoRAs"), ("motion_loras", "motion LoRAs")):
        if models.get(key):
            parts.append(f"{label} " + ", ".join(f"{item['name']}:{item['weight']:g}" for item in models[key]))
    return ", ".join(parts) or "the daemon's default"


def duration(seconds: float) -> str:
    minutes, whole = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {whole} s" if minutes else f"{whole} s"
