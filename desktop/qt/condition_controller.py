"""Condition rendering as a controller: a shot's condition image rendered off the GUI thread, the
newest request winning, and renders of an earlier shot dropped.

Renders run on one :class:`LatestWins` worker through a :class:`ConditionRenderer` (asset and BVH kept
between renders, shared with the jobs controller, which renders the condition it sends); their results
reach the GUI thread as queued signals.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from PySide6.QtCore import QObject, Signal

from anyi2v.desktop.models import edits
from anyi2v.desktop.models.condition import ConditionRenderer, LatestWins, OrbitCamera
from anyi2v.desktop.models.edits import EditError
from anyi2v.shared.shot import Shot

if TYPE_CHECKING:
    from anyi2v.render.shot_conditions import ShotConditions


class ConditionController(QObject):
    """``conditions`` and ``condition_image`` are the newest render shown (None until one is)."""

    #: the newest render, shown now (a ShotConditions; ``condition_image`` holds its bytes)
    sig_rendered = Signal(object)
    #: whether a newer render is on its way (the view says "rendering…")
    sig_busy_changed = Signal(bool)
    #: the newest render failed: why (the view shows it instead of "rendering…")
    sig_render_failed = Signal(str)
    sig_error = Signal(str)
    #: what loading the scene changed (dropped NaN points, degenerate faces...), once per new set
    sig_warning = Signal(str)
    _sig_done = Signal(int, object)  # emitted on the render thread, run on the GUI thread
    _sig_failed = Signal(int, str)

    def __init__(self, renderer: ConditionRenderer | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.renderer = renderer if renderer is not None else ConditionRenderer()
        self.conditions: ShotConditions | None = None
        self.condition_image: NDArray[np.uint8] | None = None
        self._condition_shot: Shot | None = None  # the shot whose condition inputs were last rendered
        self._warned: tuple[str, ...] = ()  # the scene warnings last said (not repeated on each render)
        self._shown_generation = 0
        self._sig_done.connect(self._rendered)  # methods: Qt queues the calls to the GUI thread
        self._sig_failed.connect(self._render_failed)
        self.render_worker: LatestWins[tuple[Shot, Path], ShotConditions] = LatestWins(
            lambda request: self.renderer.render(*request),
            lambda generation, result: self._sig_done.emit(generation, result),
            lambda generation, error: self._sig_failed.emit(generation, str(error)),
            name="anyi2v-studio-render",
        )

    def reset(self) -> None:
        """Another shot: forget the shown render and drop every render already asked for."""
        self.conditions = self.condition_image = None
        self._condition_shot = None
        self._warned = ()
        self._shown_generation = self.render_worker.latest + 1  # renders of the previous shot are dropped

    def shot_shown(self, shot: Shot, base_dir: Path) -> None:
        """The document shows ``shot``: render it when what the condition depends on changed."""
        if self._condition_inputs_changed(shot):
            self.request(shot, base_dir)

    def _condition_inputs_changed(self, shot: Shot) -> bool:
        old = self._condition_shot
        self._condition_shot = shot
        if old is None:
            return True
        return (old.scene, old.conditions, old.output.width, old.output.height) != (
            shot.scene, shot.conditions, shot.output.width, shot.output.height)  # fmt: skip

    def request(self, shot: Shot, base_dir: Path) -> int:
        """Render ``shot`` (relative paths from ``base_dir``); returns the request's generation."""
        self.sig_busy_changed.emit(True)
        return self.render_worker.submit((shot, base_dir))

    def preview_camera(self, shot: Shot, base_dir: Path, camera: OrbitCamera) -> None:
        """Render ``shot`` seen from ``camera`` while the camera moves (not an edit: nothing to undo)."""
        try:
            preview = edits.set_camera(shot, camera.eye, camera.target, camera.fov_deg)
        except EditError as error:
            self.sig_error.emit(str(error))
            return
        self.request(preview, base_dir)

    def _rendered(self, generation: int, conditions: ShotConditions) -> None:
        if generation < self._shown_generation:
            return  # an older render finishing after a newer one, or a render of a previous shot
        self._shown_generation = generation
        self.conditions = conditions
        from anyi2v.render.condition import to_uint8  # loaded by now: the worker rendered with it

        self.condition_image = to_uint8(conditions.image)
        # not idle(): the worker marks itself idle only after this signal was sent
        self.sig_busy_changed.emit(not self.render_worker.is_latest(generation))
        self.sig_rendered.emit(conditions)
        if conditions.warnings and conditions.warnings != self._warned:
            self.sig_warning.emit("Loading the scene: " + "; ".join(conditions.warnings))
        self._warned = conditions.warnings

    def _render_failed(self, generation: int, message: str) -> None:
        if generation < self._shown_generation:
            return
        message = f"The condition could not be rendered: {message}"
        latest = self.render_worker.is_latest(generation)
        if latest:
            self.sig_render_failed.emit(message)
        self.sig_busy_changed.emit(not latest)
        self.sig_error.emit(message)

    def close(self) -> None:
        self.render_worker.close()
