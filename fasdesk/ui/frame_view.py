"""Painting a live frame and its faces: the view widget and the snapshot renderer.

Both use `paint_faces`, so a snapshot looks exactly like the view. Labels are decided at
paint time from the stored scores and the current threshold, which is why moving the
slider recolours at once without new inference.
"""
from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from fasdesk.core.decision.verdict import DEFAULT_CONFIRM_FRAMES, DEFAULT_THRESHOLD
from fasdesk.core.live.loop import LiveFrame

COLOURS = {
    "real": QColor(46, 204, 113),
    "spoof": QColor(231, 76, 60),
    "unsure": QColor(158, 158, 158),
}
CONFIRMED = COLOURS["real"]  # confirmed is marked by shape (double box, tag), not hue
MARK_COLOUR = QColor(255, 200, 40)  # Collect mode: the face a class button would save


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
    elif label == "real" and confirm_n > 1:
        caption += f"  {face.streak(threshold, confirm_n)}/{confirm_n}"  # the countdown
    return label, caption, confirmed


def faces_caption(frame: LiveFrame) -> str:
    """What the view says of the frame's faces: that detection runs and found none, or
    how many it found."""
    n = len(frame.faces)
    if n == 0:
        return "No face found"
    return "1 face" if n == 1 else f"{n} faces"


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
    """Shows the latest live frame scaled to fit, with its faces.

    A notice (a source that failed) is drawn over the picture, or alone when there is
    none. A click on the picture reports the point in frame pixels (Collect mode picks a
    face with it), and one face can be marked (the one Collect mode would save).
    """
    clicked = Signal(float, float)  # x, y in the shown frame's pixels

    def __init__(self, judge=None, parent=None):
        """judge: what decides the labels (fasdesk.app.state.AppState: its `threshold` and
        `confirm_frames` are read at paint time); None: the defaults."""
        super().__init__(parent)
        self.judge = judge
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setMinimumSize(320, 240)
        self.frame: LiveFrame | None = None
        self._image: QImage | None = None
        self.placeholder = "Pick a source and press Start"
        self.notice = ""
        self.marked: tuple[int, str] | None = None  # (track id, caption) of the marked face

    def show_frame(self, frame: LiveFrame | None) -> None:
        self.frame = frame
        self._image = frame_qimage(frame) if frame is not None else None
        self.update()

    @property
    def threshold(self) -> float:
        return self.judge.threshold if self.judge is not None else DEFAULT_THRESHOLD

    @property
    def confirm_n(self) -> int:
        return self.judge.confirm_frames if self.judge is not None else DEFAULT_CONFIRM_FRAMES

    def set_placeholder(self, text: str) -> None:
        self.placeholder = text
        self.update()

    def set_notice(self, text: str) -> None:
        self.notice = text
        self.update()

    def set_marked(self, track_id: int | None, caption: str = "") -> None:
        self.marked = None if track_id is None else (track_id, caption)
        self.update()

    def _placement(self) -> tuple[float, QPointF]:
        """(scale, top-left) of the frame fitted into the widget, centred."""
        fw, fh = self.frame.width, self.frame.height
        scale = min(self.width() / fw, self.height() / fh)
        return scale, QPointF((self.width() - fw * scale) / 2, (self.height() - fh * scale) / 2)

    def mousePressEvent(self, event) -> None:
        if self.frame is not None and event.button() == Qt.LeftButton:
            scale, origin = self._placement()
            x = (event.position().x() - origin.x()) / scale
            y = (event.position().y() - origin.y()) / scale
            if 0 <= x < self.frame.width and 0 <= y < self.frame.height:
                self.clicked.emit(x, y)
        super().mousePressEvent(event)

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(24, 26, 30))
        if self._image is None or self.frame is None:
            painter.setPen(QColor(150, 155, 165))
            painter.drawText(self.rect().adjusted(20, 20, -20, -20),
                             Qt.AlignCenter | Qt.TextWordWrap, self.notice or self.placeholder)
            return
        scale, origin = self._placement()
        target = QRectF(origin.x(), origin.y(), self.frame.width * scale, self.frame.height * scale)
        painter.setRenderHint(QPainter.SmoothPixmapTransform, True)
        painter.drawImage(target, self._image)
        paint_faces(painter, self.frame, self.threshold, self.confirm_n, scale, origin)
        if self.marked is not None:
            self._paint_mark(painter, scale, origin)
        self._paint_count(painter, target)
        if self.notice:
            painter.fillRect(target, QColor(0, 0, 0, 170))
            painter.setPen(QColor(240, 240, 240))
            painter.drawText(target.adjusted(20, 20, -20, -20),
                             Qt.AlignCenter | Qt.TextWordWrap, self.notice)
        painter.end()

    def _paint_count(self, painter: QPainter, target: QRectF) -> None:
        """"No face found" across the picture, or the face count in its corner."""
        text = faces_caption(self.frame)
        font = QFont(painter.font())
        font.setBold(True)
        font.setPixelSize(22 if not self.frame.faces else 13)
        painter.setFont(font)
        metrics = QFontMetricsF(font)
        w, h = metrics.horizontalAdvance(text) + 16, metrics.height() + 8
        if self.frame.faces:
            box = QRectF(target.right() - w - 8, target.top() + 8, w, h)
        else:
            box = QRectF(target.center().x() - w / 2, target.bottom() - h - 24, w, h)
        painter.fillRect(box, QColor(0, 0, 0, 160))
        painter.setPen(QColor(240, 240, 240))
        painter.drawText(box, Qt.AlignCenter, text)

    def _paint_mark(self, painter: QPainter, scale: float, origin: QPointF) -> None:
        """A dashed outline around the marked face, outside its box, with its caption."""
        track_id, caption = self.marked
        face = next((f for f in self.frame.faces if f.track_id == track_id), None)
        if face is None:
            return
        x, y, w, h = face.result.box
        gap = 6
        rect = QRectF(origin.x() + x * scale - gap, origin.y() + y * scale - gap,
                      w * scale + 2 * gap, h * scale + 2 * gap)
        pen = QPen(MARK_COLOUR, 2, Qt.DashLine)
        painter.setPen(pen)
        painter.setBrush(Qt.NoBrush)
        painter.drawRect(rect)
        if caption:
            # Below the box's own tag ("CONFIRMED", a reason), when it has one.
            _, _, confirmed = face_text(face, self.threshold, self.confirm_n)
            below = confirmed or (face.result.reason and face.score is None)
            top = rect.bottom() + (painter.fontMetrics().height() + 6 if below else 0)
            font = QFont(painter.font())
            font.setPixelSize(12)
            font.setBold(True)
            painter.setFont(font)
            metrics = QFontMetricsF(font)
            tag = QRectF(rect.left(), top,
                         metrics.horizontalAdvance(caption) + 8, metrics.height() + 4)
            painter.fillRect(tag, MARK_COLOUR)
            painter.setPen(QColor(0, 0, 0))
            painter.drawText(tag, Qt.AlignCenter, caption)
