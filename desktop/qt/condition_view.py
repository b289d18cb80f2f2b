"""The condition image that will be sent, with the tracks' boxes and paths over it.

Gestures (the window turns the requests into undoable edits):

- left-drag on empty image: draw a box, a new track keyed at the current frame;
- left-drag a box or one of its edges or corners: move or resize it at the current frame (sets a key);
- Ctrl+click inside a box: a query point for that track's semantic mask;
- right-drag (or Alt+left-drag): orbit the 3D scene; middle-drag (or Shift+right-drag): pan; wheel: zoom.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QContextMenuEvent, QImage, QMouseEvent, QPainter, QPaintEvent, QPen, QWheelEvent
from PySide6.QtWidgets import QMenu, QWidget

from anyi2v.desktop.models.condition import OrbitCamera
from anyi2v.desktop.models.overlay import (
    Box,
    Hit,
    box_between,
    boxes_at,
    carry_point,
    drag_box,
    hit_test,
    object_at,
    track_paths,
)
from anyi2v.shared.shot import Shot

from .images import box_rect, draw_tracks, fit_rect

ORBIT_DEGREES_PER_PIXEL = 0.4
ZOOM_PER_WHEEL_STEP = 0.9
HANDLE_PIXELS = 6.0


class ConditionView(QWidget):
    sig_new_box_requested = Signal(object)  # Box
    sig_box_edit_requested = Signal(str, object)  # track id, Box
    sig_edit_started = Signal()  # a box drag begins (playback stops, so the key lands at this frame)
    sig_query_point_requested = Signal(str, object)  # track id, (x, y)
    sig_track_selected = Signal(object)  # track id or None
    sig_camera_preview = Signal(object)  # OrbitCamera, while dragging
    sig_camera_commit = Signal(object)  # OrbitCamera, on release
    sig_role_toggle_requested = Signal(str)
    sig_delete_track_requested = Signal(str)
    sig_object_track_requested = Signal(str)  # a scene object's name: seed a track from its box

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(320, 240)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.image: QImage | None = None
        self.shot: Shot | None = None
        self.frame = 0
        self.selected_track: str | None = None
        self.object_boxes: dict[str, Box] = {}  # the scene's objects as the camera sees them at frame 0
        self.message = "Open a mesh, a point cloud, an image or a shot (File > Open) to start"
        self.busy = False
        self.problem: str | None = None  # why the newest render failed (None once one succeeds)
        self._drag: tuple[str, QPointF, Hit | None, Box | None] | None = None  # kind, start, hit, start box
        self._preview_box: tuple[str | None, Box] | None = None
        self._orbit: OrbitCamera | None = None

    # State set by the window ----------------------------------------------------------------

    def set_image(self, image: QImage | None) -> None:
        """The newest condition rendered (None: none yet); it clears a render's problem."""
        self.image = image
        self.problem = None
        self.update()

    def set_problem(self, problem: str | None) -> None:
        """Why the newest render failed: said instead of "rendering…" (the image, if any, is an older one)."""
        self.problem = problem
        self.update()

    def set_shot(self, shot: Shot | None) -> None:
        self.shot = shot
        self._preview_box = None
        self.update()

    def set_frame(self, frame: int) -> None:
        self.frame = frame
        self.update()

    def set_object_boxes(self, boxes: dict[str, Box]) -> None:
        self.object_boxes = dict(boxes)
        self.update()

    def unseeded_objects(self) -> dict[str, Box]:
        """The scene objects no track was seeded from (a seeded track carries the object's name)."""
        labels = {track.label for track in self.shot.tracks} if self.shot is not None else set()
        return {name: box for name, box in self.object_boxes.items() if name not in labels}

    def set_selected_track(self, track_id: str | None) -> None:
        self.selected_track = track_id
        self.update()

    # Geometry ---------------------------------------------------------------------------------

    def image_rect(self) -> QRectF:
        if self.shot is None:
            return QRectF(self.rect())
        return fit_rect(self.shot.output.width, self.shot.output.height, QRectF(self.rect()).adjusted(8, 8, -8, -8))

    def to_normalized(self, point: QPointF) -> tuple[float, float]:
        rect = self.image_rect()
        return ((point.x() - rect.x()) / rect.width(), (point.y() - rect.y()) / rect.height())

    def to_widget(self, x: float, y: float) -> QPointF:
        rect = self.image_rect()
        return QPointF(rect.x() + x * rect.width(), rect.y() + y * rect.height())

    def _boxes(self) -> dict[str, Box]:
        if self.shot is None:
            return {}
        boxes = boxes_at(self.shot, self.frame)
        if self._preview_box is not None and self._preview_box[0] is not None:
            boxes[self._preview_box[0]] = self._preview_box[1]
        return boxes

    def hit(self, point: QPointF) -> Hit | None:
        rect = self.image_rect()
        tolerance = (HANDLE_PIXELS / rect.width(), HANDLE_PIXELS / rect.height())
        return hit_test(self._boxes(), self.to_normalized(point), tolerance, prefer=self.selected_track)

    # Painting ---------------------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt's name)
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#1e1f22"))
        if self.shot is None:
            painter.setPen(QColor("#a0a0a0"))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.message)
            return
        target = self.image_rect()
        if self.image is not None:
            painter.drawImage(target, self.image)
        else:
            text = self.problem if self.problem is not None and not self.busy else "Rendering the condition…"
            painter.setPen(QColor("#ff6b6b" if text == self.problem else "#a0a0a0"))
            flags = Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap
            painter.drawText(target.adjusted(12, 0, -12, 0), flags, text)
        if self.frame == 0:  # where the objects' boxes hold: a hint that double-clicking one seeds a track
            painter.save()
            painter.setClipRect(target)  # an object partly out of view has its box cut at the frame
            painter.setPen(QPen(QColor(200, 200, 200, 150), 1.0, Qt.PenStyle.DotLine))
            for name, box in self.unseeded_objects().items():
                rect = box_rect(box, target)
                painter.drawRect(rect)
                painter.drawText(rect.intersected(target).adjusted(3, 0, 0, -2), Qt.AlignmentFlag.AlignBottom, name)
            painter.restore()
        selected = frozenset({self.selected_track}) if self.selected_track else frozenset()
        draw_tracks(painter, target, self._boxes(), track_paths(self.shot), self.frame, selected, handles=True)
        if self._preview_box is not None and self._preview_box[0] is None:
            painter.setPen(QPen(QColor("white"), 1.5, Qt.PenStyle.DashLine))
            painter.drawRect(box_rect(self._preview_box[1], target))
        boxes = self._boxes()
        for track in self.shot.tracks:
            if track.id == self.selected_track and track.id in boxes:
                painter.setPen(QPen(QColor("white"), 1.5))
                for point in track.query_points:  # on the object: they move with its box
                    centre = self.to_widget(*carry_point(point, track.first_box, boxes[track.id]))
                    painter.drawLine(centre + QPointF(-5, 0), centre + QPointF(5, 0))
                    painter.drawLine(centre + QPointF(0, -5), centre + QPointF(0, 5))
        painter.setPen(QColor("#e0e0e0"))
        painter.drawText(QRectF(self.rect()).adjusted(10, 6, -10, -6), Qt.AlignmentFlag.AlignTop,
                         f"frame {self.frame}" + self._state_note())  # fmt: skip

    def _state_note(self) -> str:
        """What the top line says of the render: on its way, or failed with an older image shown."""
        if self.busy:
            return "   rendering…"
        if self.problem is not None and self.image is not None:
            return "   ⚠ not rendered: this is the last condition that could be (see the status bar)"
        return ""

    # Mouse ------------------------------------------------------------------------------------

    def _orbit_start(self) -> OrbitCamera | None:
        if self.shot is None or self.shot.scene is None:
            return None
        return OrbitCamera.from_camera(self.shot.scene.camera)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self.shot is None:
            return
        point = event.position()
        button, modifiers = event.button(), event.modifiers()
        alt = bool(modifiers & Qt.KeyboardModifier.AltModifier)
        shift = bool(modifiers & Qt.KeyboardModifier.ShiftModifier)
        if button == Qt.MouseButton.MiddleButton or (button == Qt.MouseButton.RightButton and shift):
            self._orbit = self._orbit_start()
            self._drag = ("pan", point, None, None) if self._orbit else None
            return
        if button == Qt.MouseButton.RightButton or (button == Qt.MouseButton.LeftButton and alt):
            self._orbit = self._orbit_start()
            self._drag = ("orbit", point, None, None) if self._orbit else None
            return
        if button != Qt.MouseButton.LeftButton:
            return
        hit = self.hit(point)
        if modifiers & Qt.KeyboardModifier.ControlModifier:
            if hit is not None:
                self.sig_query_point_requested.emit(hit.track_id, self.to_normalized(point))
            return
        if hit is not None:
            self.selected_track = hit.track_id
            self.sig_track_selected.emit(hit.track_id)
            self._drag = ("box", point, hit, self._boxes()[hit.track_id])
            self.sig_edit_started.emit()
        else:
            self._drag = ("new", point, None, None)
            self.sig_edit_started.emit()
        self.update()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        point = event.position()
        if self._drag is None:
            hit = self.hit(point) if self.shot is not None else None
            cursor = Qt.CursorShape.ArrowCursor
            if hit is not None:
                cursor = {"move": Qt.CursorShape.SizeAllCursor, "left": Qt.CursorShape.SizeHorCursor,
                          "right": Qt.CursorShape.SizeHorCursor, "top": Qt.CursorShape.SizeVerCursor,
                          "bottom": Qt.CursorShape.SizeVerCursor}.get(hit.handle, Qt.CursorShape.SizeFDiagCursor)  # fmt: skip  # noqa: E501
            self.setCursor(cursor)
            return
        kind, start, hit, start_box = self._drag
        rect = self.image_rect()
        dx, dy = (point.x() - start.x()) / rect.width(), (point.y() - start.y()) / rect.height()
        if kind == "box" and hit is not None and start_box is not None:
            self._preview_box = (hit.track_id, drag_box(start_box, hit.handle, (dx, dy)))
        elif kind == "new":
            box = box_between(self.to_normalized(start), self.to_normalized(point))
            self._preview_box = (None, box) if box is not None else None
        elif kind in ("orbit", "pan") and self._orbit is not None:
            self.sig_camera_preview.emit(self._camera_after(kind, point, start))
        self.update()

    def _camera_after(self, kind: str, point: QPointF, start: QPointF) -> OrbitCamera:
        assert self._orbit is not None
        dx, dy = point.x() - start.x(), point.y() - start.y()
        if kind == "orbit":
            return self._orbit.orbit(-dx * ORBIT_DEGREES_PER_PIXEL, dy * ORBIT_DEGREES_PER_PIXEL)
        height = self.image_rect().height()
        return self._orbit.pan(-dx / height, dy / height)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        """Double-clicking a scene object (not a track's box) seeds a track from the object's box."""
        if event.button() != Qt.MouseButton.LeftButton or self.shot is None or self.hit(event.position()):
            return
        name = object_at(self.unseeded_objects(), self.to_normalized(event.position()))
        if name is not None:
            self.sig_object_track_requested.emit(name)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._drag is None:
            return
        kind, start, hit, _ = self._drag
        preview = self._preview_box
        self._drag = None
        if kind in ("orbit", "pan") and self._orbit is not None:
            if event.position() != start:
                self.sig_camera_commit.emit(self._camera_after(kind, event.position(), start))
            self._orbit = None
            return
        self._preview_box = None
        if kind == "box" and hit is not None and preview is not None:
            self.sig_box_edit_requested.emit(hit.track_id, preview[1])
        elif kind == "new":
            if preview is not None:
                self.sig_new_box_requested.emit(preview[1])
            else:
                self.selected_track = None
                self.sig_track_selected.emit(None)
        self.update()

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        camera = self._orbit_start()
        steps = event.angleDelta().y() / 120.0
        if camera is None or steps == 0:
            return
        self.sig_camera_commit.emit(camera.zoom(ZOOM_PER_WHEEL_STEP**steps))

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:  # noqa: N802
        hit = self.hit(QPointF(event.pos())) if self.shot is not None else None
        if hit is None or (self.shot is not None and self.shot.scene is not None):
            return  # right-drag orbits a scene; the track menu is in the timeline's row header then
        self.show_track_menu(hit.track_id, event.globalPos())

    def show_track_menu(self, track_id: str, where: object) -> None:
        assert self.shot is not None
        track = next(t for t in self.shot.tracks if t.id == track_id)
        menu = QMenu(self)
        anchor = menu.addAction("Camera anchor (background)")
        anchor.setCheckable(True)
        anchor.setChecked(track.role == "anchor")
        anchor.triggered.connect(lambda: self.sig_role_toggle_requested.emit(track_id))
        menu.addAction("Delete track", lambda: self.sig_delete_track_requested.emit(track_id))
        menu.exec(where)  # type: ignore[call-overload]
