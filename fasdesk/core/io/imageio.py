"""Reading images from disk and normalising frames to 8-bit BGR.

Every image the app or the command line opens goes through `read_image`, so all of them
get the same treatment: non-ASCII paths work (bytes are read by Python, decoded by
OpenCV), EXIF orientation is applied, only regular files under a size cap are read
(fasdesk.core.io.files), and a header that claims an absurd size is refused before any pixel
memory is allocated. The header size is checked whatever the format: Pillow reads most
headers, the few formats only OpenCV decodes (Radiance HDR, PFM, PAM) are read here, and
a file whose size no reader can tell is not decoded at all. OpenCV's own limit (set in
fasdesk/__init__.py) is the second line of defence.
"""
from __future__ import annotations

import errno
import io
import os
import re
import warnings
from pathlib import Path

import cv2
import numpy as np

from fasdesk.core.io.files import MAX_IMAGE_BYTES, MAX_PIXELS, FileRefused, is_dir, read_regular_file

IMAGE_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".tif", ".tiff", ".webp",
    ".pbm", ".pgm", ".ppm", ".pnm", ".jp2", ".gif",
})


class ImageReadError(Exception):
    """An image file that cannot be used; the message is one line for the user."""


def is_image_path(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def natural_key(text: str) -> str:
    """A key that sorts like a person does: r1, r2, r10 (digit runs compare as numbers).
    A string (zero-padded digit runs), so a Qt sort role compares it as well."""
    return re.sub(r"\d+", lambda m: m.group().lstrip("0").rjust(20, "0"), text.lower())


def iter_image_files(paths):
    """Expand files and folders (recursively, in natural order: r2 before r10) into image
    file paths.

    Files named explicitly are always yielded, whatever their extension, so the caller can
    report why they are not images; files found inside folders are filtered by extension
    (a FIFO or device among them is yielded too: read_image says why it is skipped).
    A folder that cannot be listed (no permission, a path over the system's limit) is
    yielded itself, so it becomes an error row (read_image says why) instead of being
    skipped without a word.
    """
    for p in paths:
        p = Path(p)
        if is_dir(p):
            unlisted: list[OSError] = []
            for root, dirs, files in os.walk(p, onerror=unlisted.append):
                yield from _unlisted(unlisted)
                dirs.sort(key=natural_key)
                for name in sorted(files, key=natural_key):
                    if is_image_path(name):
                        yield Path(root) / name
            yield from _unlisted(unlisted)
        else:
            yield p


def _unlisted(errors: list[OSError]):
    for exc in errors:
        yield Path(exc.filename) if exc.filename else Path("?")
    errors.clear()


def folder_problem(path: str | os.PathLike) -> str | None:
    """Why a folder cannot be listed, in words, or None when it can."""
    try:
        with os.scandir(path) as entries:
            next(entries, None)
    except OSError as exc:
        return f"folder cannot be listed ({exc.strerror or exc}); its images were not read"
    return None


def _header_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the file header only (no decoding), or None if unknown."""
    return _pillow_header_size(data) or _text_header_size(data)


def _pillow_header_size(data: bytes) -> tuple[int, int] | None:
    from PIL import Image  # lazy: only needed here

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                return im.size
    except Image.DecompressionBombError:
        # Pillow refuses very large headers itself; read the size without its check.
        return _header_size_unchecked(data)
    except Exception:
        return None


def _header_size_unchecked(data: bytes) -> tuple[int, int] | None:
    from PIL import Image, ImageFile

    parser = ImageFile.Parser()
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        parser.feed(data[:1 << 16])
        return parser.image.size if parser.image is not None else None
    except Exception:
        return None
    finally:
        Image.MAX_IMAGE_PIXELS = limit


# The ASCII headers of the formats OpenCV decodes and Pillow does not identify.
_RADIANCE_SIZE = re.compile(rb"^[-+]([XY]) +(\d+) +[-+]([XY]) +(\d+)\s*$", re.M)
_PFM_SIZE = re.compile(rb"\AP[Ff]\s+(\d+)\s+(\d+)\s")
_PAM_FIELD = re.compile(rb"^(WIDTH|HEIGHT)\s+(\d+)\s*$", re.M)


def _text_header_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of a Radiance HDR, PFM or PAM file from its text header."""
    head = data[:4096]
    if head.startswith((b"#?RADIANCE", b"#?RGBE")):
        # Header lines, a blank line, then the resolution line, e.g. "-Y 480 +X 640".
        match = _RADIANCE_SIZE.search(head)
        if match:
            sizes = {match.group(1): int(match.group(2)), match.group(3): int(match.group(4))}
            if set(sizes) == {b"X", b"Y"}:
                return sizes[b"X"], sizes[b"Y"]
        return None
    match = _PFM_SIZE.match(head)
    if match:
        return int(match.group(1)), int(match.group(2))
    if head.startswith(b"P7"):
        fields = dict(_PAM_FIELD.findall(head.split(b"ENDHDR", 1)[0]))
        if b"WIDTH" in fields and b"HEIGHT" in fields:
            return int(fields[b"WIDTH"]), int(fields[b"HEIGHT"])
    return None


# Memory one decode may take at its peak: the decoder's array (at the file's bit depth and
# channels, which OpenCV keeps with IMREAD_ANYDEPTH) plus the 8-bit BGR copy made from it.
# An 8-bit RGB photo at the pixel limit fits; a 16-bit one of the same size does not.
MAX_DECODE_BYTES = 4 * MAX_PIXELS

_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}  # IHDR colour type -> channels decoded


def decoded_bytes(data: bytes, size: tuple[int, int]) -> tuple[int, str]:
    """(peak bytes decoding takes, 'N-bit, C-channel'), from the header: bit depth and
    channels, not just the pixel count (a 16-bit RGBA PNG takes 8 bytes a pixel)."""
    depth_bytes, channels = 1, 3
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 26:
        depth_bytes = 2 if data[24] == 16 else 1
        channels = _PNG_CHANNELS.get(data[25], 4)
    else:
        try:
            from PIL import Image

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
                try:
                    with Image.open(io.BytesIO(data)) as im:
                        channels = max(len(im.getbands()), 1)
                        bits = im.tag_v2.get(258) if hasattr(im, "tag_v2") else None  # TIFF
                        mode_bits = {"I;16": 16, "I;16B": 16, "I;16L": 16, "I": 32, "F": 32}
                        top = max(bits) if isinstance(bits, tuple) and bits else \
                            (bits if isinstance(bits, int) else mode_bits.get(im.mode, 8))
                        depth_bytes = max(1, (int(top) + 7) // 8)
                finally:
                    Image.MAX_IMAGE_PIXELS = limit
        except Exception:
            pass  # formats only OpenCV reads: assume 8-bit colour
    pixels = size[0] * size[1]
    decoded = pixels * depth_bytes * channels
    converted = pixels * 3 if (depth_bytes, channels) != (1, 3) else 0
    return decoded + converted, f"{8 * depth_bytes}-bit, {channels}-channel"


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Decode encoded image bytes to an 8-bit BGR array (see `to_bgr8`)."""
    if not data:
        raise ImageReadError(f"{name}: empty file")
    size = _header_size(data)
    if size is None:
        # No decoder is handed bytes whose size nobody could read from the header.
        raise ImageReadError(f"{name}: not an image file (unknown or corrupt format)")
    if size[0] * size[1] > MAX_PIXELS:
        raise ImageReadError(_over_limit(name, f"{size[0]}x{size[1]}"))
    needed, what = decoded_bytes(data, size)
    if needed > MAX_DECODE_BYTES:
        raise ImageReadError(f"{name}: decoding this {size[0]}x{size[1]} {what} image would "
                             f"take about {needed / 1e9:.1f} GB of memory, over the "
                             f"{MAX_DECODE_BYTES / 1e9:.1f} GB limit per image; not decoded")
    buf = np.frombuffer(data, np.uint8)
    try:
        # ANYDEPTH|ANYCOLOR keeps 16-bit and gray as they are and still applies EXIF
        # orientation.
        image = cv2.imdecode(buf, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
    except cv2.error as exc:
        # OpenCV's own limit (OPENCV_IO_MAX_IMAGE_PIXELS) caught a size the header
        # readers above did not see, e.g. a file two formats read differently.
        if "CV_IO_MAX_IMAGE" in str(exc):
            raise ImageReadError(_over_limit(name)) from None
        raise ImageReadError(f"{name}: image data is corrupt or truncated") from None
    if image is None:
        raise ImageReadError(f"{name}: image data is corrupt or truncated")
    return to_bgr8(image)


def _over_limit(name: str, size: str | None = None) -> str:
    claim = f"header claims {size} pixels" if size else "the decoder found a size"
    return (f"{name}: {claim}, over the {MAX_PIXELS // 1_000_000} MP limit (corrupt or a "
            f"decompression bomb); not decoded")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as 8-bit BGR. Raises ImageReadError with a one-line reason."""
    path = Path(path)
    try:
        data = read_regular_file(path, MAX_IMAGE_BYTES)
    except FileNotFoundError:
        raise ImageReadError(f"{path}: file not found") from None
    except FileRefused as exc:  # a FIFO, a device, a folder, a file over the size cap
        if exc.errno == errno.EISDIR:
            raise ImageReadError(f"{path}: {folder_problem(path) or exc}") from None
        raise ImageReadError(f"{path}: {exc}") from None
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return decode_image(data, str(path))


def to_bgr8(frame: np.ndarray, rgb: bool = False) -> np.ndarray:
    """Any frame (gray, BGR/RGB, BGRA/RGBA, 8/16-bit or float) -> contiguous 8-bit BGR.

    `rgb=True` says the colour channels arrive in RGB(A) order (e.g. from Qt or PIL).
    """
    frame = np.asarray(frame)
    if frame.ndim not in (2, 3) or frame.size == 0:
        raise ImageReadError(f"unsupported frame shape {frame.shape}")
    if frame.dtype == np.uint16:
        frame = (frame >> 8).astype(np.uint8)
    elif frame.dtype in (np.float32, np.float64):
        scale = 255.0 if frame.max(initial=0) <= 1.0 else 1.0
        frame = np.clip(frame * scale, 0, 255).astype(np.uint8)
    elif frame.dtype != np.uint8:
        raise ImageReadError(f"unsupported pixel type {frame.dtype}")
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    channels = frame.shape[2]
    if channels == 4:
        code = cv2.COLOR_RGBA2BGR if rgb else cv2.COLOR_BGRA2BGR
        return cv2.cvtColor(frame, code)
    if channels != 3:
        raise ImageReadError(f"unsupported channel count {channels}")
    if rgb:
        return cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
    return np.ascontiguousarray(frame)
