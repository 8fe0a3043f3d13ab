"""Decoding: every awkward input becomes RGB, every broken one a clear error."""

import io

import numpy as np
import pytest
from PIL import Image

from vision.image import detection_copy, load_rgb
from vision.types import ImageTooLarge, UnreadableImage


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def test_rgb_jpeg_path(astronaut_path):
    rgb = load_rgb(astronaut_path)
    assert rgb.shape == (512, 512, 3) and rgb.dtype == np.uint8


@pytest.mark.parametrize("mode", ["L", "CMYK", "P", "RGBA", "LA", "I;16"])
def test_modes_become_rgb(astronaut_rgb, mode):
    image = Image.fromarray(astronaut_rgb)
    if mode == "I;16":
        grey = np.asarray(image.convert("L"), dtype=np.uint16) * 257
        image = Image.fromarray(grey)  # uint16 -> mode I;16
    else:
        image = image.convert(mode)
    fmt = "JPEG" if mode in ("L", "CMYK") else "PNG"
    rgb = load_rgb(_encode(image, fmt))
    assert rgb.shape == (512, 512, 3) and rgb.dtype == np.uint8
    # Colours survive roughly (CMYK and palette lose some); a broken conversion would be far off.
    assert np.abs(rgb.astype(float).mean() - astronaut_rgb.mean()) < 25


def test_transparent_pixels_become_white():
    rgba = np.zeros((4, 4, 4), np.uint8)  # fully transparent black
    assert (load_rgb(_encode(Image.fromarray(rgba, "RGBA"), "PNG")) == 255).all()
    assert (load_rgb(rgba) == 255).all()


def test_exif_orientation_is_applied(astronaut_rgb):
    rotated = Image.fromarray(astronaut_rgb).rotate(90, expand=True)  # stored sideways
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    rgb = load_rgb(_encode(rotated, "JPEG", exif=exif, quality=95))
    assert rgb.shape == (512, 512, 3)
    assert np.abs(rgb.astype(float) - astronaut_rgb).mean() < 6


def test_truncated_jpeg_is_refused(astronaut_path):
    data = astronaut_path.read_bytes()
    with pytest.raises(UnreadableImage, match="cut off"):
        load_rgb(data[: len(data) // 2])


def test_text_file_named_jpg_is_refused(tmp_path):
    fake = tmp_path / "selfie.jpg"
    fake.write_text("<html>not a photo</html>")
    with pytest.raises(UnreadableImage, match="not an image"):
        load_rgb(fake)


def test_empty_file_is_refused(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(UnreadableImage):
        load_rgb(empty)


def test_decompression_bomb_is_refused_before_decoding():
    # 10000 x 10000 of one colour: a ~100 KB PNG that would inflate to 300 MB.
    bomb = _encode(Image.new("L", (10_000, 10_000)), "PNG")
    assert len(bomb) < 1_000_000
    with pytest.raises(ImageTooLarge, match="expected at most"):
        load_rgb(bomb)


def test_pixel_limit_is_configurable():
    small = _encode(Image.new("RGB", (100, 100)), "PNG")
    with pytest.raises(ImageTooLarge):
        load_rgb(small, max_pixels=9_999)
    assert load_rgb(small, max_pixels=10_000).shape == (100, 100, 3)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_rgb(tmp_path / "nope.jpg")


def test_bad_arrays_are_refused():
    with pytest.raises(UnreadableImage, match="uint8"):
        load_rgb(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(UnreadableImage, match="shape"):
        load_rgb(np.zeros((4, 4, 2), np.uint8))


def test_detection_copy_shrinks_long_side_only():
    big = np.zeros((1000, 2000, 3), np.uint8)
    copy = detection_copy(big, long_side=640)
    assert copy.rgb.shape == (320, 640, 3)
    assert copy.scale_x == pytest.approx(0.32) and copy.scale_y == pytest.approx(0.32)
    small = np.zeros((100, 50, 3), np.uint8)
    assert detection_copy(small).rgb is small and detection_copy(small).scale_x == 1.0


def test_loading_the_models_leaves_no_onnxruntime_log_in_the_temp_dir(tmp_path):
    import subprocess
    import sys

    code = ("import os, sys; from vision.profile import SelfieProfiler; SelfieProfiler().warm_up(); "
            "print(os.getpid())")
    env = {**__import__("os").environ, "TMPDIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=__import__("pathlib").Path(__file__).resolve().parents[2], check=True)
    assert done.stdout.strip().isdigit()
    # (onnxruntime's telemetry also keeps one shared `.ses` file per temp dir: not per-run litter.)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("mat-debug-")] == []


def test_heic_is_named_as_such():
    import pytest

    from vision.image import load_rgb
    from vision.types import UnreadableImage

    with pytest.raises(UnreadableImage, match="HEIC"):
        load_rgb(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64)
