"""`anyi2v daemon` (the job server) and `anyi2v keys` (CURVE key pairs for it and its clients)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from platformdirs import user_config_path, user_data_path

from anyi2v.animate import LOW_MEMORY_HELP
from anyi2v.daemon import DEFAULT_ADDRESS
from anyi2v.model_flags import add_model_choice_arguments

if TYPE_CHECKING:
    from anyi2v.daemon.server import ServerConfig

APP_NAME = "anyi2v"


def default_keys_dir() -> Path:
    """Where `anyi2v keys` keeps key pairs: the user's config folder (``$XDG_CONFIG_HOME/anyi2v/keys``,
    ``~/.config/anyi2v/keys`` on Linux; ``~/Library/Application Support/anyi2v/keys`` on macOS;
    ``%LOCALAPPDATA%\\anyi2v\\keys`` on Windows)."""
    return user_config_path(APP_NAME, appauthor=False) / "keys"


def default_data_dir() -> Path:
    """Where the daemon keeps jobs and results: the user's data folder (``$XDG_DATA_HOME/anyi2v/daemon``,
    ``~/.local/share/anyi2v/daemon`` on Linux)."""
    return user_data_path(APP_NAME, appauthor=False) / "daemon"


def daemon_config(arguments: argparse.Namespace) -> ServerConfig:
    """The server's configuration from ``anyi2v daemon``'s flags. The model flags (its default model) are
    resolved once here, so that a name the library lacks or a file that cannot be used is refused before
    anything starts (``ModelLoadError``); the worker gets them as given and loads them."""
    from anyi2v.daemon.pipeline.model_choice import resolve_sources
    from anyi2v.daemon.server import ServerConfig
    from anyi2v.daemon.worker import WorkerConfig
    from anyi2v.model_flags import chosen_sources

    resolve_sources(chosen_sources(arguments))
    worker = WorkerConfig(
        model=arguments.model,
        device=arguments.device,
        dtype=arguments.dtype,
        low_memory=arguments.low_memory,
        motion_adapter=arguments.motion_module,
        tokenizer=str(arguments.tokenizer) if arguments.tokenizer is not None else None,
        loras=tuple(arguments.loras or ()),
        motion_loras=tuple(arguments.motion_loras or ()),
        vae=arguments.vae,
        scheduler=arguments.scheduler,
        models_dir=str(arguments.models_dir) if arguments.models_dir is not None else None,
    )
    return ServerConfig(
        data_dir=arguments.data_dir or default_data_dir(),
        bind=arguments.bind,
        worker=worker,
        secret_key=arguments.server_key,
        authorized_keys=arguments.authorized_keys,
        hang_timeout=arguments.hang_timeout,
        load_timeout=arguments.load_timeout,
        retention_seconds=arguments.retention_days * 86400.0,
        disk_cap_bytes=int(arguments.disk_cap_gb * 2**30),
        exit_with_parent=arguments.exit_with_parent,
    )


def run_daemon(arguments: argparse.Namespace) -> int:
    from anyi2v.daemon.server import ConfigError, run_server
    from anyi2v.exits import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
    from anyi2v.model_flags import model_error_line

    try:
        config = daemon_config(arguments)
    except ValueError as error:  # ModelLoadError: a model flag names nothing usable
        print(model_error_line("daemon", error), file=sys.stderr)
        return EXIT_BAD_INPUT
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    def ready(server: Any) -> None:
        print(f"anyi2v daemon listening on {server.address} (data: {config.data_dir})", flush=True)

    try:
        run_server(config, on_ready=ready)
    except ConfigError as error:
        print(f"anyi2v daemon: {error}", file=sys.stderr)
        return EXIT_FAILED if str(error).startswith("the model could not be loaded") else EXIT_BAD_INPUT
    return EXIT_OK


def run_keys(arguments: argparse.Namespace) -> int:
    from anyi2v.daemon.keys import create_key_pair, privacy_rule
    from anyi2v.exits import EXIT_BAD_INPUT, EXIT_OK

    folder: Path = arguments.dir
    if arguments.action == "create":
        name = arguments.name
        if not name or not all(c.isalnum() or c in "-_" for c in name):
            print(f"anyi2v keys: {name!r}: a key name uses letters, digits, '-' and '_'", file=sys.stderr)
            return EXIT_BAD_INPUT
        folder.mkdir(parents=True, exist_ok=True)
        if (folder / f"{name}.key_secret").exists():
            print(f"anyi2v keys: {folder / name}.key_secret exists; not overwriting it", file=sys.stderr)
            return EXIT_BAD_INPUT
        public, secret = create_key_pair(folder, name)
        print(
            f"created {secret} (secret: keep it here, {privacy_rule()})"
            f" and {public} (public: hand this to the other side)"
        )
        print(_public_line(public))
        return EXIT_OK
    if arguments.action == "show":
        path = folder / f"{arguments.name}.key"
        if not path.exists():
            print(f"anyi2v keys: no public key {path}", file=sys.stderr)
            return EXIT_BAD_INPUT
        print(_public_line(path))
        return EXIT_OK
    for public_path in sorted(folder.glob("*.key")) if folder.exists() else []:
        pair = public_path.with_name(public_path.name + "_secret").exists()
        print(f"{public_path.stem:20} {'key pair' if pair else 'public key':10} {_public_line(public_path)}")
    return EXIT_OK


def _public_line(path: Path) -> str:
    import zmq.auth

    public, _ = zmq.auth.load_certificate(path)
    return f"{path.name}: {public.decode()}"


def add_parsers(commands: Any) -> None:
    daemon = commands.add_parser(
        "daemon",
        help="run the GPU job server (ZeroMQ) that the studio and `animate --daemon` talk to",
        description=(
            "Serve AnyI2V jobs over ZeroMQ (PROTOCOL.md). Binds loopback by default; any other address needs"
            " CURVE keys (--server-key, --authorized-keys; see `anyi2v keys`). Jobs and results survive restarts."
        ),
    )
    daemon.add_argument("--bind", default=DEFAULT_ADDRESS, help=f"ZeroMQ address (default {DEFAULT_ADDRESS})")
    add_model_choice_arguments(daemon, "The daemon's default model")
    daemon.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    daemon.add_argument("--dtype", help="fp16, bf16 or fp32 (default: fp16 on CUDA, fp32 on CPU)")
    daemon.add_argument("--low-memory", action="store_true", help=LOW_MEMORY_HELP)
    daemon.add_argument("--data-dir", type=Path, help=f"jobs and results (default {default_data_dir()})")
    daemon.add_argument("--server-key", type=Path, help="the server's secret key file (NAME.key_secret, mode 0600)")
    daemon.add_argument("--authorized-keys", type=Path, help="folder of client public keys (NAME.key)")
    daemon.add_argument("--hang-timeout", type=float, default=300.0, help="seconds without progress (default 300)")
    daemon.add_argument(
        "--load-timeout",
        type=float,
        default=900.0,
        help="seconds loading models may take, at start and when a job names others (default 900)",
    )
    daemon.add_argument("--retention-days", type=float, default=7.0, help="keep finished jobs this long (default 7)")
    daemon.add_argument("--disk-cap-gb", type=float, default=20.0, help="results use at most this much (default 20)")
    daemon.add_argument(
        "--exit-with-parent",
        type=int,
        metavar="PID",
        help="stop (as on SIGTERM) when process PID is gone; the studio passes its own pid for its embedded daemon",
    )
    daemon.set_defaults(handler=run_daemon)

    keys = commands.add_parser(
        "keys",
        help="create and list CURVE key pairs for the daemon and its clients",
        description=(
            "Create a key pair (NAME.key public, NAME.key_secret secret, mode 0600), show a public key, or list"
            " keys. Give the daemon's public key to each client, and put each client's public key file in the"
            " daemon's --authorized-keys folder."
        ),
    )
    keys.add_argument("action", choices=("create", "show", "list"))
    keys.add_argument("name", nargs="?", default="", help="key name (for create and show)")
    keys_dir = default_keys_dir()
    keys.add_argument("--dir", type=Path, default=keys_dir, help=f"key folder (default {keys_dir})")
    keys.set_defaults(handler=run_keys)
