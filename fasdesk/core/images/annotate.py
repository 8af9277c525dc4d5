"""Drawing face results onto an image: coloured boxes with the verdict and score.

Used for `fasdesk classify --annotate` and for the GUI's snapshots, so a saved picture
looks the same wherever it comes from.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from fasdesk.core.decision.verdict import UNSURE
from fasdesk.core.inference.pipeline import FaceResult

# BGR colours per label.
COLOURS = {
    "real": (60, 200, 40),
    "spoof": (40, 40, 230),
    UNSURE: (150, 150, 150),
}
FONT = cv2.FONT_HERSHEY_SIMPLEX


def face_caption(face: FaceResult, label: str | None = None) -> str:
    """'REAL 0.97', 'SPOOF 0.03' (p_real), or 'UNSURE' for faces not judged."""
    label = label or face.label
    if face.p_real is None or label == UNSURE:
        return UNSURE.upper()
    return f"{label.upper()} {face.p_real:.2f}"


def draw_faces(image_bgr: np.ndarray, faces: Sequence[FaceResult],
               threshold: float | None = None) -> np.ndarray:
    """A copy of the 8-bit BGR image with every face boxed and captioned.

    threshold: relabel the faces under this threshold (the GUI's slider); None keeps
    their labels.
    """
    out = np.ascontiguousarray(image_bgr).copy()
    height, width = out.shape[:2]
    # Line and text size follow the image so captions stay legible on 4K photos and
    # do not swamp thumbnails.
    unit = max(min(width, height) / 480.0, 0.5)
    thickness = max(1, round(2 * unit))
    scale = 0.6 * unit
    text_thickness = max(1, round(1.5 * unit))
    for face in faces:
        label = face.relabel(threshold) if threshold is not None else face.label
        colour = COLOURS.get(label, COLOURS[UNSURE])
        x, y, w, h = (int(round(v)) for v in face.box)
        cv2.rectangle(out, (x, y), (x + w, y + h), colour, thickness, cv2.LINE_AA)
        caption = face_caption(face, label)
        (tw, th), base = cv2.getTextSize(caption, FONT, scale, text_thickness)
        pad = max(2, round(3 * unit))
        box_h = th + base + 2 * pad
        # Above the box when there is room, otherwise just inside its top edge.
        top = y - box_h if y - box_h >= 0 else y
        left = min(max(x, 0), max(width - tw - 2 * pad, 0))
        cv2.rectangle(out, (left, top), (left + tw + 2 * pad, top + box_h), colour, cv2.FILLED)
        cv2.putText(out, caption, (left + pad, top + pad + th), FONT, scale,
                    (255, 255, 255), text_thickness, cv2.LINE_AA)
    return out


WRITABLE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def save_image(path: str | os.PathLike, image_bgr: np.ndarray, replace: bool = False) -> Path:
    """Write an 8-bit BGR image (any path, non-ASCII too); the extension picks the format.
    Returns the path written.

    Never writes over an existing file (a photo the annotated copy was made from, or
    anything else already there) unless `replace`: the new file is created exclusively,
    and when the name is taken it gets a free one beside it ('x-annotated.jpg',
    'x-annotated-2.jpg', ...). Raises OSError with a readable message when it cannot be
    encoded or written.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in WRITABLE_EXTENSIONS:
        raise OSError(f"cannot write {path.name}: unsupported image type '{ext}'")
    params = [cv2.IMWRITE_JPEG_QUALITY, 92] if ext in (".jpg", ".jpeg") else []
    ok, encoded = cv2.imencode(ext, image_bgr, params)
    if not ok:
        raise OSError(f"cannot encode {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if replace:
        from fasdesk.core.io.files import write_atomic

        write_atomic(path, encoded.tobytes())
        return path
    candidate = path
    for n in range(1, 10_000):
        try:
            handle = open(candidate, "xb")  # O_EXCL: never an existing file
        except FileExistsError:
            tail = "-annotated" if n == 1 else f"-annotated-{n}"
            candidate = path.with_name(f"{path.stem}{tail}{path.suffix}")
            continue
        try:
            with handle:
                handle.write(encoded.tobytes())
        except BaseException:
            candidate.unlink(missing_ok=True)  # ours: a full disk leaves no half picture
            raise
        return candidate
    raise OSError(f"cannot write {path.name}: every free name beside it is taken")
