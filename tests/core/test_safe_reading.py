"""Only regular files under a size cap are read, and no decoder sees an image over the
pixel limit (issue 15, items 2 and 3): FIFOs, devices, sparse giants and a 210 MP
Radiance HDR named .jpg, through the core reader, the frame sources and the classifier."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from fasdesk.core.io import files
from fasdesk.core.images.batch import classify_paths
from fasdesk.core.io.imageio import ImageReadError, MAX_PIXELS, read_image
from fasdesk.core.live.sources import ImageFolderSource, SourceError, SourceSpec, open_source
from robustcases import (HDR_HEIGHT, HDR_WIDTH, CAPPED, finishes, fifos,  # noqa: F401
                         memory_cap, needs_fifo, radiance_bomb, sparse)


@needs_fifo
def test_a_fifo_named_like_a_photo_is_refused_without_blocking(fifos, tmp_path):
    pipe = fifos(tmp_path / "x.jpg")
    with pytest.raises(ImageReadError, match=r"x\.jpg: is a FIFO \(named pipe\), not a regular file"):
        finishes(lambda: read_image(pipe), fifos=(pipe,))
    with pytest.raises(files.FileRefused, match="FIFO"):
        finishes(lambda: files.read_regular_file(pipe, 100), fifos=(pipe,))


def test_devices_and_folders_are_refused(tmp_path):
    with pytest.raises(ImageReadError, match="is a device, not a regular file"), memory_cap():
        finishes(lambda: read_image("/dev/zero"))
    with pytest.raises(ImageReadError, match="is a folder"):
        read_image(tmp_path)


def test_a_sparse_6gb_file_is_refused_before_reading(tmp_path):
    giant = sparse(tmp_path / "huge.jpg")
    with pytest.raises(ImageReadError, match=r"file too large \(6\.4 GB"), memory_cap():
        read_image(giant)


@pytest.mark.skipif(not Path("/proc/self/maps").is_file(), reason="needs Linux /proc")
def test_a_file_bigger_than_its_stat_size_stops_at_the_cap():
    # /proc files say size 0 and then deliver as much as they like: the cap still holds.
    maps = Path("/proc/self/maps")
    assert maps.stat().st_size == 0
    with pytest.raises(files.FileRefused, match="more than"):
        files.read_regular_file(maps, 64)
    assert len(files.read_regular_file(maps, 1 << 20)) > 64


def test_a_210_mp_radiance_hdr_named_jpg_is_refused_before_decoding(tmp_path):
    bomb = radiance_bomb(tmp_path / "photo.jpg")
    assert HDR_WIDTH * HDR_HEIGHT > MAX_PIXELS
    with pytest.raises(ImageReadError, match=f"{HDR_WIDTH}x{HDR_HEIGHT} pixels, over the 200 MP"), \
            memory_cap():
        read_image(bomb)
    # The format itself still works at a sane size.
    small = radiance_bomb(tmp_path / "small.hdr", 300, 200)
    assert read_image(small).shape == (200, 300, 3)


@pytest.mark.parametrize("ext", [".pfm", ".pam"])
def test_other_opencv_only_formats_have_their_header_checked(tmp_path, ext):
    image = np.full((20, 30, 3), 0.5 if ext == ".pfm" else 128,
                    np.float32 if ext == ".pfm" else np.uint8)
    ok, data = cv2.imencode(ext, image)
    assert ok
    good = tmp_path / f"good{ext}"
    good.write_bytes(data.tobytes())
    assert read_image(good).shape == (20, 30, 3)
    # The same header claiming 30000 x 20000 pixels.
    head = data.tobytes()
    if ext == ".pfm":
        bomb = head.replace(b"30 20", b"30000 20000", 1)
    else:
        bomb = head.replace(b"WIDTH 30", b"WIDTH 30000", 1).replace(b"HEIGHT 20", b"HEIGHT 20000", 1)
    (tmp_path / "bomb.jpg").write_bytes(bomb)
    with pytest.raises(ImageReadError, match="30000x20000 pixels, over"):
        read_image(tmp_path / "bomb.jpg")


@pytest.mark.skipif(sys.platform == "win32", reason="uses the resource module")
def test_opencv_itself_refuses_the_bomb_in_an_app_process(tmp_path):
    """The second line of defence: in any process that imported fasdesk, OpenCV's own
    decoders have the pixel limit, whatever format they recognise."""
    bomb = radiance_bomb(tmp_path / "photo.jpg")
    code = ("import fasdesk, cv2, numpy as np, sys\n"
            "try:\n"
            "    cv2.imdecode(np.fromfile(sys.argv[1], np.uint8), cv2.IMREAD_UNCHANGED)\n"
            "except cv2.error as exc:\n"
            "    print('refused' if 'CV_IO_MAX_IMAGE_PIXELS' in str(exc) else exc)\n")
    env = {k: v for k, v in os.environ.items() if k != files.OPENCV_PIXEL_LIMIT_ENV}
    proc = subprocess.run([sys.executable, "-c", code, str(bomb)], capture_output=True,
                          text=True, timeout=120, env=env, preexec_fn=CAPPED)
    assert proc.stdout.strip() == "refused", proc.stdout + proc.stderr


@needs_fifo
def test_folder_scans_skip_fifos_and_devices_with_the_reason(fifos, tmp_path, samples_dir,
                                                            pipeline):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "face.jpg").write_bytes((samples_dir / "real_T1.jpg").read_bytes())
    pipe = fifos(folder / "pipe.jpg")
    os.symlink("/dev/zero", folder / "zero.png")
    with memory_cap():
        results = finishes(lambda: list(classify_paths([folder], pipeline, workers=2)),
                           timeout=60, fifos=(pipe,))
    errors = {Path(r.path).name: r.error for r in results}
    assert errors == {"face.jpg": None,
                      "pipe.jpg": "is a FIFO (named pipe), not a regular file; not read",
                      "zero.png": "is a device, not a regular file; not read"}

    # The live view's image-folder source plays the photo and lists what it skipped.
    source = ImageFolderSource(folder, loop=False).open()
    with memory_cap():
        frames = finishes(lambda: [source.read() for _ in range(4)], fifos=(pipe,))
    assert [f is not None for f in frames] == [True, False, False, False]
    assert any("FIFO" in s for s in source.skipped) and any("device" in s for s in source.skipped)


@needs_fifo
def test_live_sources_never_open_a_fifo_or_device(fifos, tmp_path):
    video_pipe = fifos(tmp_path / "clip.mp4")
    image_pipe = fifos(tmp_path / "still.jpg")
    with pytest.raises(SourceError, match="FIFO"):
        finishes(lambda: open_source(SourceSpec.parse(str(video_pipe))), fifos=(video_pipe,))
    with pytest.raises(SourceError, match=r"still\.jpg: is a FIFO"):
        source = finishes(lambda: open_source(SourceSpec.parse(str(image_pipe))),
                          fifos=(image_pipe,))
        finishes(source.read, fifos=(image_pipe,))
    with pytest.raises(SourceError, match="is a device"), memory_cap():
        finishes(lambda: open_source(SourceSpec("video", "/dev/zero")))


def test_a_name_too_long_for_the_file_system_is_an_error_not_a_crash(tmp_path):
    long_name = tmp_path / ("a" * 300 + ".jpg")
    assert not files.is_dir(long_name) and files.safe_stat(long_name) is None
    with pytest.raises(ImageReadError, match="File name too long"):
        read_image(long_name)
    spec = SourceSpec.parse(str(long_name))  # the settings' last source, at start-up
    assert spec.kind == "image"
    with pytest.raises(SourceError):
        open_source(SourceSpec.parse(str(tmp_path / ("b" * 300 + ".mp4"))))


def test_write_atomic_replaces_whole_or_not_at_all(tmp_path, monkeypatch):
    from fasdesk.core.io.files import write_atomic

    target = tmp_path / "settings.json"
    write_atomic(target, "old ✓")
    assert target.read_text(encoding="utf-8") == "old ✓"
    write_atomic(target, b"\x00new", durable=True)
    assert target.read_bytes() == b"\x00new"
    # The usual permissions for a new file (umask), not a temporary file's owner-only ones.
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask

    # A write that fails half-way (a full disk, say) keeps the old file and leaves no part.
    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError):
        write_atomic(target, b"never")
    assert target.read_bytes() == b"\x00new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["settings.json"]
