"""Painting a live frame and its faces: the view widget and the snapshot renderer.

Both use `paint_faces`, so a snapshot looks exactly like the view. Labels are decided at
paint time from the stored scores and the current threshold, which is why moving the
slider recolours at once without new inference.
"""
from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from fasdesk.core.live import LiveFrame

COLOURS = {
    "real": QColor(46, 204, 113),
    "spoof": QColor(231, 76, 60),
    "unsure": QColor(158, 158, 158),
}
CONFIRMED = COLOURS["real"]  # confirmed is marked by shape (double box, tag), not hue


def frame_qimage(frame: LiveFrame) -> QImage:
    """A QImage over the frame's RGB bytes (no copy; valid while `frame` lives)."""
    rgb = frame.rgb
    return QImage(rgb.data, rgb.shape[1], rgb.shape[0], rgb.strides[0], QImage.Format_RGB888)


def face_text(face, threshold: float, confirm_n: int) -> tuple[str, str, bool]:
    """(label, caption, confirmed) for one tracked face under the current settings."""
    label = face.label(threshold)
    confirmed = label == "real" and face.confirmed(threshold, confirm_n)
    if face.score is None:
        caption = f"UNSURE  #{face.track_id}"
    else:
        caption = f"{label.upper()} {face.score:.2f}  #{face.track_id}"
    if confirmed:
        caption = "\u2713 " + caption
    return label, caption, confirmed


def paint_faces(painter: QPainter, frame: LiveFrame, threshold: float, confirm_n: int,
                scale: float = 1.0, offset: QPointF = QPointF(0, 0)) -> None:
    """Boxes and captions of the frame's faces, in frame pixels * scale + offset."""
    unit = max(1.0, min(frame.width, frame.height) * scale / 400.0)
    font = QFont(painter.font())
    font.setPixelSize(round(13 * unit))
    font.setBold(True)
    painter.setFont(font)
    metrics = QFontMetricsF(font)
    painter.setRenderHint(QPainter.Antialiasing, True)
    for face in frame.faces:
        label, caption, confirmed = face_text(face, threshold, confirm_n)
        colour = CONFIRMED if confirmed else COLOURS.get(label, COLOURS["unsure"])
        x, y, w, h = face.result.box
        rect = QRectF(offset.x() + x * scale, offset.y() + y * scale, w * scale, h * scale)
        painter.setBrush(Qt.NoBrush)
        painter.setPen(QPen(colour, (4 if confirmed else 2) * unit))
        painter.drawRect(rect)
        if confirmed:
            # A second, inner outline: "confirmed" reads at a glance, not just by hue.
            painter.setPen(QPen(colour, 1 * unit))
            inset = 5 * unit
            painter.drawRect(rect.adjusted(inset, inset, -inset, -inset))
        pad = 3 * unit
        text_w = metrics.horizontalAdvance(caption) + 2 * pad
        text_h = metrics.height() + 2 * pad
        top = rect.top() - text_h if rect.top() - text_h >= offset.y() else rect.top()
        tag = QRectF(rect.left() - (1 * unit), top, text_w, text_h)
        painter.fillRect(tag, colour)
        painter.setPen(QColor(0, 0, 0) if confirmed else QColor(255, 255, 255))
        painter.drawText(tag.adjusted(pad, pad, -pad, -pad), Qt.AlignLeft | Qt.AlignVCenter, caption)
        below = None
        if confirmed:
            below = "CONFIRMED"
        elif face.result.reason and face.score is None:
            below = face.result.reason.split(" (")[0]
        if below:
            bw = metrics.horizontalAdvance(below) + 2 * pad
            btag = QRectF(rect.left() - (1 * unit), rect.bottom(), bw, text_h)
            painter.fillRect(btag, colour)
            painter.drawText(btag.adjusted(pad, pad, -pad, -pad), Qt.AlignLeft | Qt.AlignVCenter, below)


def render_annotated(frame: LiveFrame, threshold: float, confirm_n: int) -> QImage:
    """The frame at its own resolution with the faces painted on (for snapshots)."""
    image = frame_qimage(frame).convertToFormat(QImage.Format_RGB888)  # a deep copy
    painter = QPainter(image)
    paint_faces(painter, frame, threshold, confirm_n)
    painter.end()
    return image


class FrameView(QWidget):
    """Shows the latest live frame scaled to fit, with its faces."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setMinimumSize(320, 240)
        self.frame: LiveFrame | None = None
        self._image: QImage | None = None
        self.threshold = 0.5
        self.confirm_n = 3
        self.placeholder = "Pick a source and press Start"

    def show_frame(self, frame: LiveFrame | None) -> None:
        self.frame = frame
        self._image = frame_qimage(frame) if frame is not None else None
        self.update()

    def set_threshold(self, value: float) -> None:
        self.threshold = value
        self.update()

    def set_confirm_frames(self, n: int) -> None:
        self.confirm_n = n
        self.update()

    def set_placeholder(self, text: str) -> None:
        self.placeholder = text
        self.update()

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(24, 26, 30))
        if self._image is None or self.frame is None:
            painter.setPen(QColor(150, 155, 165))
            painter.drawText(self.rect(), Qt.AlignCenter, self.placeholder)
            return
        fw, fh = self.frame.width, self.frame.height
        scale = min(self.width() / fw, self.height() / fh)
        target = QRectF((self.width() - fw * scale) / 2, (self.height() - fh * scale) / 2,
                        fw * scale, fh * scale)
        painter.setRenderHint(QPainter.SmoothPixmapTransform, True)
        painter.drawImage(target, self._image)
        paint_faces(painter, self.frame, self.threshold, self.confirm_n, scale, target.topLeft())
        painter.end()
