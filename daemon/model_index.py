"""The server's view of its model library: the models folder, looked at again every few seconds.

A thread scans the folder (``pipeline.library.scan_library``) at start and then every
:data:`RESCAN_SECONDS`, reusing what it read of files that did not change, so a model copied in is listed
within seconds and the server's loop never waits on a disk. The loop reads :attr:`ModelIndex.current`
(one immutable :class:`Listing`, replaced whole) to answer ``models_request`` and to check the names a
submitted shot's ``model`` section uses (:func:`choice_problems`): a name the library lacks, of another
kind, or whose file cannot be used is refused at submit, the problem at ``model.<part>`` saying what the
library has. The worker resolves the same names again when it loads them (the file may have changed in
between), so this check is for a clear early answer, not the only one.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from anyi2v.daemon.pipeline.library import Library, LibraryError, default_models_dir, scan_library
from anyi2v.daemon.pipeline.model_choice import BUILTIN_MODELS, sources_names
from anyi2v.daemon.pipeline.model_kinds import Kind
from anyi2v.shared.errors import Problem
from anyi2v.shared.protocol import MAX_LIBRARY_MODELS, LibraryModel, ModelCombination
from anyi2v.shared.shot import ModelChoice

from .worker import WorkerConfig, default_sources

__all__ = ["RESCAN_SECONDS", "Listing", "ModelIndex", "choice_problems", "default_combination", "motion_frame_limit"]

log = logging.getLogger("anyi2v.daemon")
RESCAN_SECONDS = 2.0

_SINGLE: tuple[tuple[str, Kind], ...] = (
    ("checkpoint", "checkpoint"),
    ("motion_module", "motion_module"),
    ("vae", "vae"),
)
_LISTS: tuple[tuple[str, Kind], ...] = (("loras", "lora"), ("motion_loras", "motion_lora"))


@dataclass(frozen=True)
class Listing:
    """One look at the models folder: ``library`` (None when there is none: ``problem`` says why) and
    when it was taken (``scanned``, Unix seconds; 0 before the first look)."""

    folder: Path
    library: Library | None
    problem: str | None
    scanned: float

    def models(self) -> tuple[list[LibraryModel], int]:
        """The entries as the protocol lists them (at most ``MAX_LIBRARY_MODELS``) and how many were left out."""
        entries = self.library.entries if self.library is not None else ()
        listed = [
            LibraryModel(
                name=entry.name,
                short_name=entry.short_name,
                kind=entry.kind,
                family=entry.family,
                version=entry.version,
                frame_limit=entry.frame_limit,
                size_bytes=entry.size_bytes,
                problem=entry.problem[:1000] if entry.problem else None,
                note=entry.note[:1000] if entry.note else None,
            )
            for entry in entries[:MAX_LIBRARY_MODELS]
        ]
        return listed, max(0, len(entries) - MAX_LIBRARY_MODELS)


class ModelIndex:
    """The models folder ``folder`` (None: the app's default), scanned by a thread (:meth:`start`)."""

    def __init__(self, folder: str | Path | None, interval: float = RESCAN_SECONDS) -> None:
        root = Path(folder) if folder is not None else default_models_dir()
        self.folder = root.expanduser().absolute()
        self.interval = interval
        self.current = Listing(self.folder, None, "the models folder has not been read yet", 0.0)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def scan(self) -> Listing:
        """Look at the folder now (the thread does this on its own; tests call it directly)."""
        previous = self.current.library
        try:
            library = scan_library(self.folder, previous)
            listing = Listing(self.folder, library, None, time.time())
        except LibraryError as error:
            listing = Listing(self.folder, None, str(error), time.time())
        except OSError as error:  # the folder vanished or became unreadable mid-scan
            listing = Listing(self.folder, None, f"{self.folder}: cannot be read ({error})", time.time())
        if listing.problem != self.current.problem and listing.problem is not None:
            log.info("model library: %s", listing.problem)
        self.current = listing
        return listing

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="anyi2v-model-index", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.scan()
            except Exception:  # a bug here must not end the listing for good
                log.exception("model library scan failed")
            self._stop.wait(self.interval)


def choice_problems(choice: ModelChoice | None, listing: Listing, where: str = "shot.model") -> list[Problem]:
    """Why the names of a shot's ``model`` section cannot be served from ``listing`` (empty: they can)."""
    if choice is None:
        return []
    named: list[tuple[str, str, Kind]] = []
    for part, kind in _SINGLE:
        value = getattr(choice, part)
        if value is not None and not (part == "checkpoint" and value in BUILTIN_MODELS):
            named.append((f"{where}.{part}", value, kind))
    for part, kind in _LISTS:
        for index, entry in enumerate(getattr(choice, part) or ()):
            named.append((f"{where}.{part}[{index}].name", entry.name, kind))
    if not named:
        return []
    if listing.library is None:
        why = listing.problem or "no models folder"
        return [Problem(place, f"{value!r}: this daemon has no model library ({why})") for place, value, _ in named]
    problems = []
    for place, value, kind in named:
        try:
            listing.library.find(value, kind)
        except LibraryError as error:
            problems.append(Problem(place, str(error)))
    return problems


def motion_frame_limit(choice: ModelChoice | None, listing: Listing) -> int | None:
    """The frame limit of the motion module ``choice`` names, when the library knows it (else None)."""
    if choice is None or choice.motion_module is None or listing.library is None:
        return None
    try:
        return listing.library.find(choice.motion_module, "motion_module").frame_limit
    except LibraryError:
        return None


def default_combination(config: WorkerConfig) -> ModelCombination:
    """The daemon's default models as its flags named them (a path given there is shown by its file name)."""
    return ModelCombination.model_validate({**sources_names(default_sources(config)), "scheduler": config.scheduler})
