"""Tests for pipeline.inputs.imaging: decoding every odd input to RGB, sizing and encoding."""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from pipeline.errors import ImageError
from pipeline.inputs.imaging import (
    IMAGE_SUFFIXES,
    content_type,
    decode,
    encode,
    extension,
    fit_size,
    resize_to,
    thumbnail,
)
from tests.conftest import ROOMS, SHARED_ROOMS

RED, BLUE, GREEN, WHITE = (255, 0, 0), (0, 0, 255), (0, 255, 0), (255, 255, 255)


def save(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def halves(size: tuple[int, int] = (100, 60), left=RED, right=BLUE, mode: str = "RGB") -> Image.Image:
    """Left half one colour, right half another: any rotation or flip shows."""
    image = Image.new(mode, size, left)
    image.paste(right, (size[0] // 2, 0, size[0], size[1]))
    return image


def close_to(pixel, expected, tolerance: int = 12) -> bool:
    return all(abs(int(a) - int(b)) <= tolerance for a, b in zip(pixel, expected, strict=True))


def png_bytes(width: int, height: int, bit_depth: int, colour_type: int, idat: bytes) -> bytes:
    """A PNG assembled by hand, for layouts Pillow cannot write (16-bit RGB) or sizes too big to build."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# --- orientation and colour modes -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("orientation", "top", "bottom"),
    [(6, RED, BLUE), (8, BLUE, RED), (3, None, None), (1, None, None)],
)
def test_exif_orientation_is_applied(orientation, top, bottom):
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = save(halves(), "JPEG", exif=exif, quality=95)

    image = decode(data, "photo.jpg", min_side=32)  # 60 px is under the default minimum of 64

    assert image.mode == "RGB"
    if orientation in (6, 8):
        # Stored 100x60 on its side; upright it is portrait and the left half ends up at the top or bottom.
        assert image.size == (60, 100)
        assert close_to(image.getpixel((30, 10)), top, 40)
        assert close_to(image.getpixel((30, 90)), bottom, 40)
    elif orientation == 3:
        assert image.size == (100, 60)
        assert close_to(image.getpixel((10, 30)), BLUE, 40)  # upside down: left and right swap
        assert close_to(image.getpixel((90, 30)), RED, 40)
    else:
        assert image.size == (100, 60)
        assert close_to(image.getpixel((10, 30)), RED, 40)
        assert close_to(image.getpixel((90, 30)), BLUE, 40)


def test_cmyk_jpeg_decodes_to_sensible_rgb():
    # Pillow writes an Adobe marker with inverted CMYK; a wrong inversion would give cyan, not red.
    data = save(halves((80, 80), (0, 255, 255, 0), (255, 255, 0, 0), mode="CMYK"), "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"

    image = decode(data, "cmyk.jpg")

    assert image.mode == "RGB"
    assert close_to(image.getpixel((10, 40)), RED, 30)
    assert close_to(image.getpixel((70, 40)), BLUE, 30)


def test_cmyk_with_broken_icc_profile_falls_back_to_plain_conversion():
    data = save(Image.new("CMYK", (80, 80), (0, 0, 0, 0)), "JPEG", icc_profile=b"not a real profile")
    image = decode(data, "cmyk.jpg")
    assert close_to(image.getpixel((40, 40)), WHITE, 10)


def test_cmyk_tiff_decodes():
    image = decode(save(Image.new("CMYK", (70, 70), (0, 255, 255, 0)), "TIFF"), "cmyk.tif")
    assert image.mode == "RGB"
    assert close_to(image.getpixel((5, 5)), RED, 5)


def test_16_bit_grey_png_is_scaled_by_range_not_clipped():
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (64, 1))
    source = Image.fromarray(ramp)
    assert source.mode == "I;16"
    data = save(source, "PNG")
    assert Image.open(io.BytesIO(data)).mode in ("I;16", "I")

    pixels = np.asarray(decode(data, "ramp.png"))

    assert pixels.shape == (64, 256, 3)
    assert pixels.min() <= 1 and pixels.max() >= 254
    assert abs(int(pixels[0, 128, 0]) - 128) <= 2
    assert (pixels == 255).mean() < 0.02  # a clip at 255 would make nearly every pixel white
    assert np.all(np.diff(pixels[0, :, 0].astype(int)) >= 0)


def test_dark_16_bit_grey_stays_dark():
    data = save(Image.fromarray(np.full((64, 64), 1000, np.uint16)), "PNG")
    assert decode(data, "dark.png").getpixel((0, 0)) == (4, 4, 4)  # 1000 / 257, not clipped to 255


def test_16_bit_rgb_png():
    # Pillow cannot write 16-bit RGB, so build one: each row is filter byte 0, then big-endian RRGGBB.
    width, height = 64, 64
    row = b"\x00" + struct.pack(">HHH", 65535, 32896, 0) * width
    data = png_bytes(width, height, 16, 2, zlib.compress(row * height))

    image = decode(data, "rgb16.png")

    assert image.mode == "RGB" and image.size == (64, 64)
    assert close_to(image.getpixel((10, 10)), (255, 128, 0), 1)


def test_float_tiff_in_unit_range_scales_to_8_bit():
    ramp = np.tile(np.linspace(0.0, 1.0, 100, dtype=np.float32), (70, 1))
    pixels = np.asarray(decode(save(Image.fromarray(ramp, mode="F"), "TIFF"), "float.tif"))
    assert pixels[0, 0, 0] == 0 and pixels[0, -1, 0] == 255


def test_32_bit_int_tiff_with_16_bit_values():
    values = np.full((70, 70), 65535, np.int32)
    values[:, :35] = 0
    image = decode(save(Image.fromarray(values, mode="I"), "TIFF"), "int.tif")
    assert image.getpixel((0, 0)) == (0, 0, 0)
    assert image.getpixel((69, 0)) == WHITE


def test_rgba_transparent_pixels_become_white():
    image = halves((80, 80), (0, 0, 0, 0), (0, 255, 0, 255), mode="RGBA")
    decoded = decode(save(image, "PNG"), "cutout.png")
    assert decoded.mode == "RGB"
    assert decoded.getpixel((5, 5)) == WHITE  # not the black hidden under the transparency
    assert decoded.getpixel((75, 5)) == GREEN


def test_la_png():
    image = halves((80, 80), (0, 0), (100, 255), mode="LA")
    decoded = decode(save(image, "PNG"), "grey-alpha.png")
    assert decoded.getpixel((5, 5)) == WHITE
    assert decoded.getpixel((75, 5)) == (100, 100, 100)


def test_palette_gif():
    image = halves((80, 80)).quantize(colors=4)
    assert image.mode == "P"
    decoded = decode(save(image, "GIF"), "palette.gif")
    assert decoded.mode == "RGB"
    assert decoded.getpixel((5, 5)) == RED and decoded.getpixel((75, 5)) == BLUE


def test_palette_gif_with_transparent_index_becomes_white():
    image = halves((80, 80)).quantize(colors=4)
    red_index = image.getpixel((5, 5))
    decoded = decode(save(image, "GIF", transparency=red_index), "palette.gif")
    assert decoded.getpixel((5, 5)) == WHITE
    assert decoded.getpixel((75, 5)) == BLUE


def test_animated_gif_gives_first_frame():
    frames = [Image.new("RGB", (80, 80), colour) for colour in (RED, GREEN, BLUE)]
    data = save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 3
    assert decode(data, "animated.gif").getpixel((40, 40)) == RED


def test_webp():
    decoded = decode(save(halves((100, 70)), "WEBP", lossless=True), "photo.webp")
    assert decoded.size == (100, 70)
    assert decoded.getpixel((10, 30)) == RED and decoded.getpixel((90, 30)) == BLUE


@pytest.mark.parametrize(
    ("mode", "colour", "expected"),
    [
        ("1", 1, WHITE),
        ("L", 128, (128, 128, 128)),
        ("LAB", (255, 128, 128), WHITE),
        ("YCbCr", (255, 128, 128), WHITE),
    ],
)
def test_other_modes_via_tiff(mode, colour, expected):
    decoded = decode(save(Image.new(mode, (70, 70), colour), "TIFF"), f"{mode}.tif")
    assert decoded.mode == "RGB"
    assert close_to(decoded.getpixel((5, 5)), expected, 3)


# --- rejected inputs ------------------------------------------------------------------------------------


def test_zero_bytes():
    with pytest.raises(ImageError, match=r"^empty file \(0 bytes\)$"):
        decode(b"", "empty.jpg")


def test_text_named_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("these are not the pixels you are looking for\n")
    with pytest.raises(ImageError, match=r"^not an image \(unrecognised format\)$") as caught:
        decode(path.read_bytes(), path.name)
    assert "notes.jpg" not in str(caught.value)  # the caller adds the name


def test_truncated_jpeg():
    noise = np.random.default_rng(0).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    data = save(Image.fromarray(noise), "JPEG", quality=90)
    with pytest.raises(ImageError, match=r"^truncated or corrupt image: ") as caught:
        decode(data[: len(data) // 2], "half.jpg")
    assert "\n" not in str(caught.value)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def _bilevel_png(width: int, height: int) -> bytes:
    """A genuine all-black 1-bit PNG; zeros compress about 1000:1, so a huge one is a few tens of KB."""
    packer = zlib.compressobj(9)
    row = bytes(1 + (width + 7) // 8)
    block = row * 1000
    body = b"".join(packer.compress(block) for _ in range(height // 1000))
    body += packer.compress(row * (height % 1000)) + packer.flush()
    return png_bytes(width, height, 1, 0, body)


def test_decompression_bomb_is_rejected_from_the_header():
    data = _bilevel_png(20_000, 20_000)
    assert len(data) < 100_000
    with pytest.raises(ImageError, match=r"^image too large: .*\(limit 100000000\)$"):
        decode(data, "bomb.png")


def test_image_over_our_limit_but_under_pillows_is_rejected_without_warnings():
    data = _bilevel_png(11_000, 10_000)  # 110 MP: over our 100 MP, under Pillow's 179 MP hard stop
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's own bomb warning must not escape
        with pytest.raises(ImageError, match=r"^image too large: 11000x10000 pixels \(limit 100000000\)$"):
            decode(data, "big.png")


def test_max_pixels_is_configurable():
    data = save(Image.new("RGB", (100, 100)), "PNG")
    with pytest.raises(ImageError, match=r"^image too large: 100x100 pixels \(limit 5000\)$"):
        decode(data, "small.png", max_pixels=5000)


@pytest.mark.parametrize("size", [(8, 8), (63, 500), (500, 10)])
def test_too_small(size):
    data = save(Image.new("RGB", size), "PNG")
    expected = rf"^image too small: {size[0]}x{size[1]} \(minimum 64 px per side\)$"
    with pytest.raises(ImageError, match=expected):
        decode(data, "tiny.png")


def test_min_side_is_configurable():
    assert decode(save(Image.new("RGB", (8, 8)), "PNG"), "tiny.png", min_side=8).size == (8, 8)


def test_identify_only_format_is_not_decoded_as_black():
    # An MPEG sequence header: Pillow reads its size but has no decoder for the pixels.
    data = b"\x00\x00\x01\xb3" + bytes([0x14, 0x00, 0xF0]) + bytes(64)
    assert Image.open(io.BytesIO(data)).format == "MPEG"
    with pytest.raises(ImageError, match=r"^unsupported format: MPEG"):
        decode(data, "clip.mpg")


# --- real photos ----------------------------------------------------------------------------------------


def test_the_photos_kept_with_the_tests_are_the_shared_ones():
    """tests/fixtures/rooms is a copy of the shared room photos, notice included: byte for byte the same files
    where the shared set is beside the repository; whole and decodable either way."""
    kept = sorted(p.name for p in ROOMS.iterdir())
    assert kept == ["NOTICE.md", "living-room-01.jpg", "living-room-01.restyled.png", "living-room-02-small.jpg"]
    assert "MIT License" in (ROOMS / "NOTICE.md").read_text()
    for name in kept:
        if SHARED_ROOMS.is_dir():
            assert (ROOMS / name).read_bytes() == (SHARED_ROOMS / name).read_bytes(), name
        if name != "NOTICE.md":
            decode((ROOMS / name).read_bytes(), name)


def test_real_small_photo():
    image = decode((ROOMS / "living-room-02-small.jpg").read_bytes(), "living-room-02-small.jpg")
    assert image.mode == "RGB" and image.size == (293, 220)


def test_real_full_size_photo():
    image = decode((ROOMS / "living-room-01.jpg").read_bytes(), "living-room-01.jpg")
    assert image.mode == "RGB" and image.size == (3264, 2448)
    assert fit_size(*image.size, 768) == (768, 576)


# --- sizing ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "long_side", "expected"),
    [
        ((3264, 2448), 768, (768, 576)),
        ((2448, 3264), 768, (576, 768)),  # portrait
        ((293, 220), 768, (768, 576)),  # enlarged
        ((8000, 1000), 512, (512, 64)),  # 8:1 panorama
        ((1000, 8000), 512, (64, 512)),
        ((1000, 1000), 499, (496, 496)),  # the long side itself snaps to the nearest 8
        ((1000, 1000), 500, (504, 504)),  # halfway rounds up
        ((3264, 2448), 507, (504, 376)),  # short side follows the snapped long side: 504 * 3/4 = 378
        ((10_000, 10), 768, (768, 8)),  # never 0
        ((3, 2), 5, (8, 8)),
        ((1920, 1080), 1024, (1024, 576)),
        ((1000, 750), 700, (704, 528)),
    ],
)
def test_fit_size(size, long_side, expected):
    result = fit_size(*size, long_side)
    assert result == expected
    assert all(side % 8 == 0 and side >= 8 for side in result)


def test_fit_size_rejects_non_positive():
    with pytest.raises(ValueError):
        fit_size(0, 100, 768)
    with pytest.raises(ValueError):
        fit_size(100, 100, 0)


def test_resize_to():
    image = halves((300, 200))
    assert resize_to(image, (300, 200)) is image
    smaller = resize_to(image, (152, 104))
    larger = resize_to(image, (600, 400))
    assert smaller.size == (152, 104) and larger.size == (600, 400)
    assert close_to(smaller.getpixel((10, 50)), RED, 2) and close_to(larger.getpixel((590, 200)), BLUE, 2)


def test_thumbnail():
    image = halves((1000, 500))
    small = thumbnail(image)
    assert small.size == (256, 128)
    assert thumbnail(halves((500, 1000)), 100).size == (50, 100)
    tiny = thumbnail(halves((100, 60)))
    assert tiny.size == (100, 60) and tiny is not image  # not enlarged
    assert image.size == (1000, 500)  # the original is untouched


# --- encoding -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "magic", "mime", "suffix", "tolerance"),
    [
        ("png", b"\x89PNG", "image/png", ".png", 0),
        ("jpeg", b"\xff\xd8\xff", "image/jpeg", ".jpg", 12),
        ("webp", b"RIFF", "image/webp", ".webp", 12),
    ],
)
def test_encode_decode_round_trip(fmt, magic, mime, suffix, tolerance):
    image = halves((128, 96))
    data = encode(image, fmt)
    assert data.startswith(magic)
    assert content_type(fmt) == mime and extension(fmt) == suffix

    back = decode(data, "out" + suffix)

    assert back.size == (128, 96)
    assert close_to(back.getpixel((10, 48)), RED, tolerance)
    assert close_to(back.getpixel((118, 48)), BLUE, tolerance)


def test_jpeg_quality_is_high():
    noise = Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    assert len(encode(noise, "jpeg")) > len(save(noise, "JPEG", quality=75))


def test_encode_jpeg_drops_alpha():
    data = encode(Image.new("RGBA", (64, 64), (0, 255, 0, 128)), "jpeg")
    assert Image.open(io.BytesIO(data)).mode == "RGB"


def test_unknown_format():
    with pytest.raises(ValueError, match="gif"):
        encode(halves(), "gif")
    with pytest.raises(ValueError):
        extension("tiff")


def test_image_suffixes():
    for suffix in (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"):
        assert suffix in IMAGE_SUFFIXES
    assert all(suffix.startswith(".") and suffix == suffix.lower() for suffix in IMAGE_SUFFIXES)
    for suffix in (".txt", ".pdf", ".mpg", ".h5", ".json"):
        assert suffix not in IMAGE_SUFFIXES
