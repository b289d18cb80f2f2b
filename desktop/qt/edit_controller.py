"""The views' requests as edits: tracks, keys, the clipboard, settings and the camera, each a pure
function of :mod:`anyi2v.desktop.models.edits` applied by the document controller at the playhead.

It also keeps which track is selected (the key selection lives with the undo stack, in the document
controller) and the copied keys.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from anyi2v.desktop.models import edits
from anyi2v.desktop.models.condition import OrbitCamera
from anyi2v.desktop.models.document import ShotDocument
from anyi2v.desktop.models.edits import ClipboardKey
from anyi2v.desktop.models.overlay import boxes_at
from anyi2v.desktop.models.timeline import Playback
from anyi2v.shared.shot import Shot

from .condition_controller import ConditionController
from .document_controller import DocumentController


class EditController(QObject):
    """``selected_track`` is the track keys are inserted on (None: none); ``clipboard`` the copied keys."""

    sig_track_selected = Signal(object)  # a track id, or None
    sig_error = Signal(str)
    sig_info = Signal(str)

    def __init__(
        self, documents: DocumentController, renders: ConditionController, playback: Playback,
        parent: QObject | None = None,
    ) -> None:  # fmt: skip
        super().__init__(parent)
        self.documents, self.renders, self.playback = documents, renders, playback
        self.selected_track: str | None = None
        self.clipboard: tuple[ClipboardKey, ...] = ()
        documents.sig_document_changed.connect(self._document_changed)
        documents.sig_shot_shown.connect(self._shot_shown)

    def _document_changed(self, _document: ShotDocument | None) -> None:
        self.selected_track = None

    def _shot_shown(self, shot: Shot | None) -> None:
        if shot is not None and self.selected_track not in {t.id for t in shot.tracks}:
            self.selected_track = None  # (the views learn it as they are shown the shot)

    def apply(self, text: str, change: Callable[[Shot], Shot], merge_key: str | None = None) -> bool:
        return self.documents.apply(text, change, merge_key)

    # Tracks -----------------------------------------------------------------------------------

    def select_track(self, track_id: str | None) -> None:
        self.selected_track = track_id
        self.sig_track_selected.emit(track_id)

    def add_track(self, box: edits.Box) -> None:
        created: list[str] = []

        def change(shot: Shot) -> Shot:
            new, track_id = edits.add_track(shot, self.playback.frame, box)
            created.append(track_id)
            return new

        if self.apply("Add track", change):
            self.select_track(created[0])

    def add_object_track(self, name: str) -> None:
        """A new track from a scene object's box at frame 0, named after the object."""
        conditions = self.renders.conditions
        box = conditions.object_boxes.get(name) if conditions is not None else None
        if box is None:
            self.sig_error.emit(f"Track from object: the scene has no object {name!r} in view")
            return
        created: list[str] = []

        def change(shot: Shot) -> Shot:
            new, track_id = edits.add_track(shot, 0, box, label=name)
            created.append(track_id)
            return new

        if self.apply(f"Track from {name}", change):
            self.select_track(created[0])
            self.playback.set_frame(0)

    def add_query_point(self, track_id: str, point: tuple[float, float]) -> None:
        frame = self.playback.frame
        self.apply("Add query point", lambda shot: edits.add_query_point(shot, track_id, point, frame))

    def toggle_role(self, track_id: str) -> None:
        shot = self.documents.shot
        assert shot is not None
        role = next(t.role for t in shot.tracks if t.id == track_id)
        new_role = "object" if role == "anchor" else "anchor"
        self.apply(f"Make {track_id} an {new_role}", lambda shot: edits.set_track(shot, track_id, role=new_role))

    def delete_tracks(self, track_ids: list[str]) -> None:
        self.apply("Delete track", lambda shot: edits.remove_tracks(shot, track_ids))

    # Keys -------------------------------------------------------------------------------------

    def set_box(self, track_id: str, box: edits.Box) -> None:
        frame = self.playback.frame
        self.apply(f"Key {track_id} at frame {frame}", lambda shot: edits.set_key(shot, track_id, frame, box))

    def insert_key(self) -> None:
        shot = self.documents.shot
        if shot is None or self.selected_track is None:
            self.sig_error.emit("Insert key: select a track first (click its box or its row)")
            return
        track_id, frame = self.selected_track, self.playback.frame
        box = boxes_at(shot, frame)[track_id]
        self.apply(f"Key {track_id} at frame {frame}", lambda shot: edits.set_key(shot, track_id, frame, box))

    def move_keys(self, keys: set[edits.KeyRef], delta: int) -> None:
        if self.apply("Move keys", lambda shot: edits.move_keys(shot, keys, delta)):
            self.documents.selection.set({(track_id, frame + delta) for track_id, frame in keys})

    def interpolate_selected(self, interpolation: str) -> None:
        self.set_interpolation(set(self.documents.selection.keys), interpolation)

    def set_interpolation(self, keys: set[edits.KeyRef], interpolation: str) -> None:
        if not keys:
            self.sig_error.emit("Interpolation: select keys in the timeline first")
            return
        self.apply(f"Interpolation {interpolation}",
                   lambda shot: edits.set_interpolation(shot, keys, interpolation))  # type: ignore[arg-type]  # fmt: skip

    def delete_keys(self, keys: set[edits.KeyRef]) -> None:
        if keys:
            self.apply("Delete keys", lambda shot: edits.delete_keys(shot, keys))

    def delete_selected(self) -> None:
        """The selected keys, or the selected track when no key is selected."""
        if self.documents.selection.keys:
            self.delete_keys(set(self.documents.selection.keys))
        elif self.selected_track is not None:
            self.delete_tracks([self.selected_track])

    def copy_keys(self) -> None:
        shot, keys = self.documents.shot, self.documents.selection.keys
        if shot is not None and keys:
            self.clipboard = edits.copy_keys(shot, keys)
            self.sig_info.emit(f"Copied {len(self.clipboard)} key(s)")

    def paste_keys(self) -> None:
        into = self.selected_track if len({key.track_id for key in self.clipboard}) == 1 else None
        frame, clipboard = self.playback.frame, self.clipboard
        self.apply("Paste keys", lambda shot: edits.paste_keys(shot, clipboard, frame, into))

    # Settings and camera ----------------------------------------------------------------------

    def set_value(self, path: tuple[str, ...], value: Any) -> None:
        if path == ("output", "n_frames"):
            self.set_frame_count(int(value))
            return
        name = ".".join(path)
        label = path[-1].replace("_", " ")
        self.apply(f"Set {label}", lambda shot: edits.set_value(shot, path, value), merge_key=name)

    def set_model_part(self, part: str, value: Any) -> None:
        """One part of the shot's ``model`` section (quick changes of the same part, a slider's, merge)."""
        label = part.replace("_", " ")
        self.apply(f"Set {label}", lambda shot: edits.set_model_part(shot, part, value), merge_key=f"model.{part}")

    def set_frame_count(self, n_frames: int) -> None:
        self.apply("Set frame count", lambda shot: edits.set_frame_count(shot, n_frames), merge_key="n_frames")

    def set_layers(self, layers: list[dict[str, Any]]) -> None:
        self.apply("Change condition layers", lambda shot: edits.set_value(shot, ("conditions",), layers))

    def set_camera(self, camera: OrbitCamera) -> None:
        self.apply("Move camera", lambda shot: edits.set_camera(shot, camera.eye, camera.target, camera.fov_deg),
                   merge_key="camera")  # fmt: skip

    def preview_camera(self, camera: OrbitCamera) -> None:
        """Render the shot seen from ``camera`` while it moves (not an edit)."""
        document = self.documents.document
        if document is not None:
            self.renders.preview_camera(document.shot, document.base_dir, camera)
