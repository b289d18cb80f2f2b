"""The dope sheet: a row per track with its keys, a frame ruler and the playhead.

Click the ruler (or empty space) to move the playhead and drag to scrub; click a key to select it
(Shift adds), drag selected keys to move them; right-click a key for its interpolation, copy, paste
and delete; right-click a track's name for its role and deletion. The window turns requests into
undoable edits.
"""

from __future__ import annotations

from PySide6.QtCore import QPoint, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QContextMenuEvent, QMouseEvent, QPainter, QPaintEvent, QPen, QPolygonF
from PySide6.QtWidgets import QMenu, QWidget

from anyi2v.desktop.models.edits import KeyRef
from anyi2v.desktop.models.timeline import (
    KeyMark,
    KeySelection,
    TimelineRow,
    TimelineScale,
    clamp_shift,
    timeline_rows,
)
from anyi2v.shared.curves import INTERPOLATIONS
from anyi2v.shared.shot import Shot

from .images import track_color

HEADER_WIDTH = 150
RULER_HEIGHT = 24
ROW_HEIGHT = 26
KEY_RADIUS = 6.0


class TimelineView(QWidget):
    sig_frame_requested = Signal(int)
    sig_move_keys_requested = Signal(object, int)  # keys, delta
    sig_interpolation_requested = Signal(object, str)  # keys, interpolation
    sig_delete_keys_requested = Signal(object)
    sig_copy_requested = Signal()
    sig_paste_requested = Signal()
    sig_track_selected = Signal(object)
    sig_track_menu_requested = Signal(str, QPoint)

    def __init__(self, selection: KeySelection, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.selection = selection
        self.shot: Shot | None = None
        self.rows: tuple[TimelineRow, ...] = ()
        self.frame = 0
        self.selected_track: str | None = None
        self._press: tuple[str, QPointF, KeyMark | None] | None = None
        self._drag_delta = 0
        self.setMinimumHeight(RULER_HEIGHT + 2 * ROW_HEIGHT + 8)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        selection.changed.connect(lambda _: self._refresh_rows())

    def set_shot(self, shot: Shot | None) -> None:
        self.shot = shot
        self._refresh_rows()

    def set_frame(self, frame: int) -> None:
        self.frame = frame
        self.update()

    def set_selected_track(self, track_id: str | None) -> None:
        self.selected_track = track_id
        self.update()

    def _refresh_rows(self) -> None:
        self.rows = timeline_rows(self.shot, self.selection.keys) if self.shot is not None else ()
        self.setMinimumHeight(RULER_HEIGHT + max(2, len(self.rows)) * ROW_HEIGHT + 8)
        self.update()

    def scale(self) -> TimelineScale:
        n_frames = self.shot.output.n_frames if self.shot is not None else 1
        return TimelineScale(n_frames, max(1.0, self.width() - HEADER_WIDTH - 8), HEADER_WIDTH)

    def row_at(self, y: float) -> int | None:
        index = int((y - RULER_HEIGHT) // ROW_HEIGHT)
        return index if y >= RULER_HEIGHT and 0 <= index < len(self.rows) else None

    def key_at(self, point: QPointF) -> KeyMark | None:
        row = self.row_at(point.y())
        if row is None or point.x() < HEADER_WIDTH:
            return None
        scale = self.scale()
        reach = max(KEY_RADIUS, scale.step / 2)
        near = [key for key in self.rows[row].keys if abs(scale.x(key.frame) - point.x()) <= reach]
        return min(near, key=lambda key: abs(scale.x(key.frame) - point.x()), default=None)  # the nearest

    def key_position(self, track_id: str, frame: int) -> QPointF:
        """Where a key is drawn (for tests and for menus)."""
        row = next(i for i, r in enumerate(self.rows) if r.track_id == track_id)
        return QPointF(self.scale().x(frame), RULER_HEIGHT + (row + 0.5) * ROW_HEIGHT)

    # Painting ---------------------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), QColor("#232427"))
        if self.shot is None:
            return
        scale = self.scale()
        n_frames = self.shot.output.n_frames
        label_every = max(1, round(40 / scale.step))
        painter.setPen(QColor("#9a9a9a"))
        for frame in range(n_frames):
            x = scale.x(frame)
            painter.setPen(QColor("#3a3b3f"))
            painter.drawLine(QPointF(x, RULER_HEIGHT), QPointF(x, self.height()))
            if frame % label_every == 0:
                painter.setPen(QColor("#b0b0b0"))
                painter.drawText(QRectF(x - 20, 2, 40, RULER_HEIGHT - 4), Qt.AlignmentFlag.AlignCenter, str(frame))
        for index, row in enumerate(self.rows):
            top = RULER_HEIGHT + index * ROW_HEIGHT
            if row.track_id == self.selected_track:
                painter.fillRect(QRectF(0, top, self.width(), ROW_HEIGHT), QColor("#2f3440"))
            color = track_color(index)
            painter.setPen(color)
            title = row.title + (" ⚓" if row.role == "anchor" else "")
            painter.drawText(QRectF(8, top, HEADER_WIDTH - 12, ROW_HEIGHT), Qt.AlignmentFlag.AlignVCenter, title)
            centre_y = top + ROW_HEIGHT / 2
            xs = [scale.x(key.frame) for key in row.keys]
            painter.setPen(QPen(color.darker(150), 2.0))
            if len(xs) > 1:
                painter.drawLine(QPointF(xs[0], centre_y), QPointF(xs[-1], centre_y))
            for key in row.keys:
                delta = self._drag_delta if key.selected else 0
                self._draw_key(painter, QPointF(scale.x(key.frame + delta), centre_y), key, color)
        if not self.rows:
            painter.setPen(QColor("#8a8a8a"))
            hint = "No tracks yet: drag on the condition image to draw a box"
            if self.shot.scene is not None:
                hint += ", or double-click an object's dotted box"
            painter.drawText(QRectF(HEADER_WIDTH, RULER_HEIGHT, self.width() - HEADER_WIDTH, ROW_HEIGHT * 2),
                             Qt.AlignmentFlag.AlignVCenter, hint)  # fmt: skip
        playhead = scale.x(self.frame)
        painter.setPen(QPen(QColor("#4aa8ff"), 2.0))
        painter.drawLine(QPointF(playhead, 0), QPointF(playhead, self.height()))
        painter.fillRect(QRectF(playhead - 14, 2, 28, RULER_HEIGHT - 4), QColor("#4aa8ff"))
        painter.setPen(QColor("white"))
        painter.drawText(QRectF(playhead - 14, 2, 28, RULER_HEIGHT - 4), Qt.AlignmentFlag.AlignCenter, str(self.frame))

    def _draw_key(self, painter: QPainter, centre: QPointF, key: KeyMark, color: QColor) -> None:
        painter.setPen(QPen(QColor("white") if key.selected else QColor("#111111"), 1.5))
        painter.setBrush(QColor("#ffd75e") if key.selected else color)
        r = KEY_RADIUS
        if key.glyph == "diamond":
            painter.drawPolygon(QPolygonF([centre + QPointF(0, -r), centre + QPointF(r, 0),
                                           centre + QPointF(0, r), centre + QPointF(-r, 0)]))  # fmt: skip
        elif key.glyph == "square":
            painter.drawRect(QRectF(centre.x() - r * 0.8, centre.y() - r * 0.8, 1.6 * r, 1.6 * r))
        else:
            painter.drawEllipse(centre, r * 0.85, r * 0.85)

    # Mouse ------------------------------------------------------------------------------------

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self.shot is None or event.button() != Qt.MouseButton.LeftButton:
            return
        point = event.position()
        extend = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        row = self.row_at(point.y())
        if point.x() < HEADER_WIDTH:
            self.sig_track_selected.emit(self.rows[row].track_id if row is not None else None)
            return
        key = self.key_at(point)
        if key is not None:
            self.selection.click(key.ref, extend)
            self.sig_track_selected.emit(key.track_id)
            self._press = ("key", point, key)
        else:
            self.selection.click(None, extend)
            self._press = ("scrub", point, None)
            self.sig_frame_requested.emit(self.scale().frame_at(point.x()))

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._press is None:
            return
        kind, start, _ = self._press
        scale = self.scale()
        if kind == "scrub":
            self.sig_frame_requested.emit(scale.frame_at(event.position().x()))
        else:
            delta = scale.frame_at(event.position().x()) - scale.frame_at(start.x())
            n_frames = self.shot.output.n_frames if self.shot is not None else 1
            self._drag_delta = clamp_shift((frame for _, frame in self.selection.keys), delta, n_frames)
            self.update()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._press is None:
            return
        kind = self._press[0]
        delta, self._drag_delta, self._press = self._drag_delta, 0, None
        if kind == "key" and delta != 0 and self.selection.keys:
            self.sig_move_keys_requested.emit(set(self.selection.keys), delta)
        self.update()

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:  # noqa: N802
        point = QPointF(event.pos())
        row = self.row_at(point.y())
        if point.x() < HEADER_WIDTH:
            if row is not None:
                self.sig_track_menu_requested.emit(self.rows[row].track_id, event.globalPos())
            return
        key = self.key_at(point)
        if key is not None and key.ref not in self.selection.keys:
            self.selection.click(key.ref, extend=False)
        keys: set[KeyRef] = set(self.selection.keys)
        menu = QMenu(self)
        interpolation = menu.addMenu("Interpolation")
        interpolation.setEnabled(bool(keys))
        for name in INTERPOLATIONS:
            action = interpolation.addAction(name.capitalize())
            action.triggered.connect(lambda _=False, n=name: self.sig_interpolation_requested.emit(keys, n))
        menu.addSeparator()
        menu.addAction("Copy keys", self.sig_copy_requested.emit).setEnabled(bool(keys))
        menu.addAction("Paste keys at the playhead", self.sig_paste_requested.emit)
        menu.addAction("Delete keys", lambda: self.sig_delete_keys_requested.emit(keys)).setEnabled(bool(keys))
        menu.exec(event.globalPos())
