"""fasdesk.core.display: what the UI wraps in QImage must be right-sized, packed RGB."""
import numpy as np

from fasdesk.core.display import fit_within, thumbnail, to_rgb_bytes
from fasdesk.core.imageio import read_image


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
