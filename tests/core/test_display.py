"""fasdesk.core.images.display: what the UI wraps in QImage must be right-sized, packed RGB."""
import cv2
import numpy as np
import pytest

from fasdesk.core.images.annotate import COLOURS
from fasdesk.core.images.display import annotated_preview, fit_within, thumbnail, to_rgb_bytes
from fasdesk.core.io.imageio import read_image


def test_to_rgb_bytes_swaps_channels_and_packs_rows():
    bgr = np.zeros((3, 5, 3), np.uint8)
    bgr[..., 0] = 10  # blue
    bgr[..., 2] = 200  # red
    rgb = to_rgb_bytes(bgr)
    assert (rgb.width, rgb.height, rgb.stride) == (5, 3, 15)
    assert len(rgb.data) == 3 * 5 * 3
    assert rgb.data[:3] == bytes([200, 0, 10])


def test_to_rgb_bytes_accepts_gray_and_rgba():
    gray = np.full((4, 4), 77, np.uint8)
    assert to_rgb_bytes(gray).data == bytes([77]) * 48
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0] = 255  # red in RGB order
    assert to_rgb_bytes(rgba, rgb=True).data[:3] == bytes([255, 0, 0])


def test_thumbnail_of_a_sample_keeps_aspect_and_never_enlarges(samples_dir):
    image = read_image(samples_dir / "real_T1.jpg")  # 480 wide, 640 high
    thumb = thumbnail(image, 64)
    assert (thumb.width, thumb.height) == (48, 64)
    assert len(thumb.data) == thumb.stride * thumb.height
    small = np.zeros((10, 20, 3), np.uint8)
    assert fit_within(small, 64) is small


def _pixel(rgb, x, y):
    offset = y * rgb.stride + 3 * x
    return tuple(rgb.data[offset:offset + 3])


def _distance_to_edge_colour(rgb, box, colour_bgr):
    """How close the left edge of a drawn box comes to a colour (lines are anti-aliased,
    so the best of a few pixels across the edge)."""
    x, y, w, h = box
    want = colour_bgr[::-1]
    pixels = [_pixel(rgb, xx, y + h // 2) for xx in range(max(0, x - 2), x + 3)]
    return min(max(abs(a - b) for a, b in zip(p, want)) for p in pixels)


@pytest.mark.parametrize("factor, shown, label", [(4.0, (1200, 1600), "real"),
                                                  (0.2, (360, 480), "unsure")])
def test_annotated_preview_sizes_the_image_and_scales_the_boxes(pipeline, samples_dir,
                                                               factor, shown, label):
    """A 1920x2560 photo is shrunk to 1600, a 96x128 one (face too small to judge)
    enlarged to 480; either way the box is drawn where the face is in the shown picture,
    in the colour of its label."""
    image = read_image(samples_dir / "real_T1.jpg")
    image = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_LINEAR)
    faces = pipeline.process(image)
    assert [f.label for f in faces] == [label]
    preview = annotated_preview(image, faces, threshold=0.5)
    assert (preview.width, preview.height) == shown
    scale = shown[0] / image.shape[1]
    box = [round(v * scale) for v in faces[0].box]
    assert _distance_to_edge_colour(preview, box, COLOURS[label]) < 30
    # Relabelled under another threshold without new inference: a judged face turns red.
    if label == "real":
        spoof = annotated_preview(image, faces, threshold=1.0)
        assert _distance_to_edge_colour(spoof, box, COLOURS["spoof"]) < 30
