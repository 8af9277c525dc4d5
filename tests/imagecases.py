"""Builds a folder of good and bad image files from the real samples, for the core and
CLI tests. Each file comes with what fasdesk must say about it."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def png_bomb(width: int = 60000, height: int = 60000) -> bytes:
    """A valid PNG header (signature, IHDR with correct CRC) claiming a huge RGB image."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _png_chunk(b"IEND", b""))


def jpeg_bomb(width: int = 60000, height: int = 60000) -> bytes:
    """A real baseline JPEG whose SOF0 frame header is patched to claim a huge size."""
    ok, small = cv2.imencode(".jpg", np.full((16, 16, 3), 90, np.uint8))
    data = bytearray(small.tobytes())
    sof = data.index(b"\xff\xc0")
    # SOF0: marker, length(2), precision(1), height(2), width(2)
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def upright(samples_dir: Path, name: str = "real_T1.jpg") -> np.ndarray:
    """A sample as displayed (EXIF applied), 8-bit BGR."""
    from fasdesk.core.io.imageio import read_image

    return read_image(samples_dir / name)


def save_with_orientation(path: Path, upright_bgr: np.ndarray, orientation: int) -> None:
    """Store the pixels turned so that applying EXIF `orientation` shows them upright."""
    rgb = Image.fromarray(cv2.cvtColor(upright_bgr, cv2.COLOR_BGR2RGB))
    # Orientation 6 means "rotate 90 clockwise to display", so store it turned the other way.
    stored = {6: rgb.transpose(Image.Transpose.ROTATE_90),
              8: rgb.transpose(Image.Transpose.ROTATE_270),
              3: rgb.transpose(Image.Transpose.ROTATE_180)}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(path, quality=95, exif=exif.tobytes())


def write_cases(folder: Path, samples_dir: Path) -> dict[str, str]:
    """Write the cases into `folder` (one in a sub-folder); return relative name -> expected.

    Expected is "face" (a judged face), "noface" (read, no face) or "error:<words>" (the
    file must be reported unreadable, the error mentioning <words>).
    """
    folder.mkdir(parents=True, exist_ok=True)
    image = upright(samples_dir)
    jpeg = (samples_dir / "spoof_F1.jpg").read_bytes()
    cases: dict[str, str] = {}

    def put(name: str, expected: str, data: bytes | None = None, array=None):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if array is not None:
            ok, enc = cv2.imencode(Path(name).suffix.lower(), array)
            assert ok
            data = enc.tobytes()
        path.write_bytes(data)
        cases[name] = expected

    put("good.jpg", "face", data=(samples_dir / "real_T1.jpg").read_bytes())
    put("nested/deeper/spoof copy.jpg", "face", data=jpeg)
    put("empty.jpg", "error:empty", data=b"")
    put("notes.jpg", "error:not an image", data=b"this is a text file, not a photo\n" * 3)
    put("truncated.jpg", "error:truncated", data=jpeg[: len(jpeg) // 3])
    put("random.png", "error:not an image",
        data=np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    put("bomb.png", "error:60000x60000", data=png_bomb())
    put("bomb.jpg", "error:60000x60000", data=jpeg_bomb())
    put("one_pixel.png", "noface", array=np.zeros((1, 1, 3), np.uint8))
    put("no_face.png", "noface", array=np.full((240, 320, 3), 128, np.uint8))
    put("gray.png", "face", array=cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
    put("rgba.png", "face", array=cv2.cvtColor(image, cv2.COLOR_BGR2BGRA))
    put("sixteen_bit.png", "face", array=image.astype(np.uint16) * 257)
    put("visage é ü 顔.jpg", "face", data=(samples_dir / "real_T1.jpg").read_bytes())
    put("UPPER.JPEG", "face", data=(samples_dir / "real_T1.jpg").read_bytes())
    save_with_orientation(folder / "exif_rotated.jpg", image, 6)
    cases["exif_rotated.jpg"] = "face"
    # Not an image extension: skipped inside folders, never reported.
    (folder / "readme.txt").write_text("not an image")
    return cases
