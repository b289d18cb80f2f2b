"""numpy images to Qt and the shared drawing of boxes and paths over an image."""

from __future__ import annotations

import itertools

import numpy as np
from numpy.typing import NDArray
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QImage, QPainter, QPen

from anyi2v.desktop.models.overlay import Box, TrackPath

# One colour per track, in order (a qualitative palette readable on dark and light images).
TRACK_COLORS = ("#ff5a5f", "#3ecf8e", "#4aa8ff", "#ffc145", "#c77dff", "#00d1d1", "#ff8c42", "#b8e986")


def track_color(index: int) -> QColor:
    return QColor(TRACK_COLORS[index % len(TRACK_COLORS)])


def to_qimage(image: NDArray[np.uint8]) -> QImage:
    """An ``(h, w, 3)`` uint8 RGB array to a QImage that owns its pixels."""
    array = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
    height, width = array.shape[:2]
    return QImage(array.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()


def fit_rect(image_width: int, image_height: int, area: QRectF) -> QRectF:
    """The largest rectangle of the image's aspect ratio centred in ``area``."""
    scale = min(area.width() / image_width, area.height() / image_height)
    width, height = image_width * scale, image_height * scale
    return QRectF(area.x() + (area.width() - width) / 2, area.y() + (area.height() - height) / 2, width, height)


def box_rect(box: Box, target: QRectF) -> QRectF:
    x0, y0, x1, y1 = box
    return QRectF(target.x() + x0 * target.width(), target.y() + y0 * target.height(),
                  (x1 - x0) * target.width(), (y1 - y0) * target.height())  # fmt: skip


def draw_tracks(
    painter: QPainter,
    target: QRectF,
    boxes: dict[str, Box],
    paths: tuple[TrackPath, ...],
    frame: int,
    selected: frozenset[str] = frozenset(),
    handles: bool = False,
) -> None:
    """Each track's path (a dot per frame, keys larger), and its box at ``frame``; anchors dashed."""
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    for index, path in enumerate(paths):
        color = track_color(index)
        points = [QPointF(target.x() + x * target.width(), target.y() + y * target.height()) for x, y in path.centres]
        painter.setPen(QPen(color, 1.0))
        for a, b in itertools.pairwise(points):
            painter.drawLine(a, b)
        painter.setPen(Qt.PenStyle.NoPen)
        for frame_index, point in enumerate(points):
            is_key = frame_index in path.key_frames
            painter.setBrush(QBrush(QColor("white") if frame_index == frame else color))
            radius = 4.0 if is_key else 2.0
            painter.drawEllipse(point, radius, radius)
        box = boxes.get(path.track_id)
        if box is None:
            continue
        pen = QPen(color, 3.0 if path.track_id in selected else 2.0)
        if path.role == "anchor":
            pen.setStyle(Qt.PenStyle.DashLine)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        rect = box_rect(box, target)
        painter.drawRect(rect)
        painter.drawText(
            rect.topLeft() + QPointF(4, 14), path.track_id + (" (anchor)" if path.role == "anchor" else "")
        )
        if handles and path.track_id in selected:
            painter.setBrush(QBrush(color))
            for corner in (rect.topLeft(), rect.topRight(), rect.bottomLeft(), rect.bottomRight()):
                painter.drawRect(QRectF(corner.x() - 4, corner.y() - 4, 8, 8))
