"""The result player: frames fill in as they arrive (the latest step preview stands in for frames not
yet decoded); the shared playhead picks the frame. Compare with the condition side by side or as an
overlay, with the tracks' boxes drawn over the result to check the motion."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPaintEvent
from PySide6.QtWidgets import QWidget

from anyi2v.desktop.models.overlay import boxes_at, track_paths
from anyi2v.shared.shot import Shot

from .images import draw_tracks, fit_rect, to_qimage

COMPARE_MODES = ("result", "side by side", "overlay")


class PlayerView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(320, 240)
        self.frames: list[QImage | None] = []
        self.preview: list[QImage] = []
        self.condition: QImage | None = None
        self.shot: Shot | None = None
        self.frame = 0
        self.mode = "result"
        self.show_boxes = True
        self.caption = "No result yet: press Generate"

    def set_frames(self, frames: Sequence[NDArray[np.uint8] | None], preview: Sequence[NDArray[np.uint8]] = ()) -> None:
        self.frames = [to_qimage(frame) if frame is not None else None for frame in frames]
        self.preview = [to_qimage(image) for image in preview]
        self.update()

    def set_frame_image(self, index: int, frame: NDArray[np.uint8]) -> None:
        if 0 <= index < len(self.frames):
            self.frames[index] = to_qimage(frame)
            self.update()

    def set_condition(self, image: QImage | None) -> None:
        self.condition = image
        self.update()

    def set_shot(self, shot: Shot | None) -> None:
        self.shot = shot
        self.update()

    def set_frame(self, frame: int) -> None:
        self.frame = frame
        self.update()

    def set_mode(self, mode: str) -> None:
        self.mode = mode
        self.update()

    def set_show_boxes(self, show: bool) -> None:
        self.show_boxes = show
        self.update()

    def current_image(self) -> QImage | None:
        if 0 <= self.frame < len(self.frames) and self.frames[self.frame] is not None:
            return self.frames[self.frame]
        if self.preview:
            return self.preview[min(self.frame, len(self.preview) - 1)]
        return None

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#17181a"))
        image = self.current_image()
        area = QRectF(self.rect()).adjusted(8, 24, -8, -8)
        painter.setPen(QColor("#e0e0e0"))
        received = sum(frame is not None for frame in self.frames)
        if self.frames:  # (with no result the caption in the middle says so)
            status = f"frame {self.frame}   {received}/{len(self.frames)} frames"
            painter.drawText(QRectF(self.rect()).adjusted(10, 4, -10, 0), Qt.AlignmentFlag.AlignTop, status)
        if image is None:
            painter.setPen(QColor("#808080"))
            painter.drawText(
                area, Qt.AlignmentFlag.AlignCenter, self.caption if not self.frames else "Waiting for frames…"
            )
            return
        if self.mode == "side by side" and self.condition is not None:
            half = area.width() / 2
            left = fit_rect(
                self.condition.width(), self.condition.height(), QRectF(area.x(), area.y(), half - 4, area.height())
            )
            painter.drawImage(left, self.condition)
            target = fit_rect(
                image.width(), image.height(), QRectF(area.x() + half + 4, area.y(), half - 4, area.height())
            )
        else:
            target = fit_rect(image.width(), image.height(), area)
        painter.drawImage(target, image)
        if self.mode == "overlay" and self.condition is not None:
            painter.setOpacity(0.5)
            painter.drawImage(target, self.condition)
            painter.setOpacity(1.0)
        if self.show_boxes and self.shot is not None and self.shot.tracks:
            frame = min(self.frame, self.shot.output.n_frames - 1)
            draw_tracks(painter, target, boxes_at(self.shot, frame), track_paths(self.shot), frame)
