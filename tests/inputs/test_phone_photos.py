"""Phone photos as they are: HEIC with its orientation, wide-gamut ICC profiles, capture facts without GPS."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageCms

from pipeline.inputs.imaging import IMAGE_SUFFIXES, capture_facts, decode, encode
from pipeline.inputs.sources import collect_inputs
from tests.conftest import restyle

RED, BLUE = (255, 0, 0), (0, 0, 255)
D50 = np.array([0.9642, 1.0, 0.8249])
BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])
P3_PRIMARIES = ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060))
SRGB_PRIMARIES = ((0.640, 0.330), (0.300, 0.600), (0.150, 0.060))
D65_XY = (0.3127, 0.3290)
# Display P3 patches: saturated ones partly outside sRGB, mid tones inside it, and a grey that must not move.
P3_PATCHES = [(230, 40, 40), (40, 200, 60), (50, 70, 220), (180, 120, 80), (90, 140, 170), (128, 128, 128)]
GPS_TAGS = {
    ExifTags.GPS.GPSLatitudeRef: "N",
    ExifTags.GPS.GPSLatitude: (51.0, 30.0, 12.5),
    ExifTags.GPS.GPSLongitudeRef: "W",
    ExifTags.GPS.GPSLongitude: (0.0, 7.0, 39.0),
}


# --- colour science, computed here independently of lcms ------------------------------------------------


def xy_to_xyz(x: float, y: float) -> np.ndarray:
    return np.array([x / y, 1.0, (1.0 - x - y) / y])


def rgb_to_xyz(primaries) -> np.ndarray:
    """RGB-to-XYZ matrix (D65) from chromaticities: columns scaled so that RGB white lands on D65."""
    columns = np.stack([xy_to_xyz(*xy) for xy in primaries], axis=1)
    return columns * np.linalg.solve(columns, xy_to_xyz(*D65_XY))


def bradford_d65_to_d50() -> np.ndarray:
    source, target = BRADFORD @ xy_to_xyz(*D65_XY), BRADFORD @ D50
    return np.linalg.inv(BRADFORD) @ np.diag(target / source) @ BRADFORD


def srgb_decode(values: np.ndarray) -> np.ndarray:
    return np.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4)


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    return np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)


def p3_to_srgb(colour) -> np.ndarray:
    """Display P3 8-bit -> linear -> XYZ (D65) -> linear sRGB -> clipped -> 8-bit sRGB."""
    linear = srgb_decode(np.asarray(colour, dtype=np.float64) / 255.0)  # P3 uses the sRGB curve
    xyz = rgb_to_xyz(P3_PRIMARIES) @ linear
    srgb = np.clip(np.linalg.solve(rgb_to_xyz(SRGB_PRIMARIES), xyz), 0.0, 1.0)
    return np.rint(srgb_encode(srgb) * 255.0)


# --- a minimal ICC v4 Display P3 profile (matrix + parametric TRC), built byte by byte ------------------


def s15(values) -> bytes:
    return b"".join(struct.pack(">i", round(float(v) * 65536)) for v in values)


def mluc(text: str) -> bytes:
    encoded = text.encode("utf-16-be")
    return b"mluc" + bytes(4) + struct.pack(">II2s2sII", 1, 12, b"en", b"US", len(encoded), 28) + encoded


def p3_profile() -> bytes:
    """Display P3 as ICC v4 bytes: D50-adapted colorants, the sRGB parametric curve, D50 white point."""
    adapted = bradford_d65_to_d50() @ rgb_to_xyz(P3_PRIMARIES)
    xyz = [b"XYZ " + bytes(4) + s15(column) for column in adapted.T]
    trc = b"para" + bytes(4) + struct.pack(">HH", 3, 0) + s15((2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045))
    chad = b"sf32" + bytes(4) + s15(bradford_d65_to_d50().ravel())
    tags = [
        (b"desc", mluc("Test Display P3")),
        (b"cprt", mluc("No copyright")),
        (b"wtpt", b"XYZ " + bytes(4) + s15(D50)),
        (b"chad", chad),
        (b"rXYZ", xyz[0]),
        (b"gXYZ", xyz[1]),
        (b"bXYZ", xyz[2]),
        (b"rTRC", trc),
        (b"gTRC", trc),
        (b"bTRC", trc),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for signature, data in tags:
        data += bytes(-len(data) % 4)
        table += struct.pack(">4sII", signature, offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = (
        struct.pack(">I4sI4s4s4s", size, b"\0\0\0\0", 0x04300000, b"mntr", b"RGB ", b"XYZ ")
        + struct.pack(">6H", 2024, 5, 1, 12, 0, 0)
        + b"acsp"
        + bytes(24)
        + struct.pack(">I", 0)
        + s15(D50)
        + bytes(4)
        + bytes(16)
        + bytes(28)
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body


# --- helpers ----------------------------------------------------------------------------------------------


def save(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def patches(colours, side: int = 16) -> Image.Image:
    """One side x side square per colour, in a row, tall enough for decode's minimum side."""
    image = Image.new("RGB", (side * len(colours), 64))
    for index, colour in enumerate(colours):
        image.paste(colour, (index * side, 0, (index + 1) * side, 64))
    return image


def patch_colours(image: Image.Image, count: int, side: int = 16) -> np.ndarray:
    pixels = np.asarray(image, dtype=np.float64)
    return np.array([pixels[32, index * side + side // 2] for index in range(count)])


def srgb_profile_bytes() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def undated(icc: bytes) -> bytes:
    """Profile bytes without the creation time and profile ID, which change each time one is built."""
    return icc[:24] + icc[36:84] + icc[100:]


def is_srgb(icc: bytes | None) -> bool:
    """Whether a profile is sRGB: it maps every test colour onto itself when converted to sRGB."""
    if not icc:
        return False
    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    probe = patches(P3_PATCHES + [RED, BLUE, (255, 255, 255), (0, 0, 0)])
    moved = ImageCms.profileToProfile(probe, profile, ImageCms.createProfile("sRGB"))
    return np.abs(np.asarray(moved, dtype=int) - np.asarray(probe, dtype=int)).max() <= 1


def gradient(width: int = 192, height: int = 144) -> Image.Image:
    """Photo-like: smooth colour ramps in both directions and a darker diagonal band."""
    x = np.linspace(0.0, 1.0, width)[None, :]
    y = np.linspace(0.0, 1.0, height)[:, None]
    band = 1.0 - 0.4 * np.exp(-(((x - y) * 6.0) ** 2))
    channels = [(0.2 + 0.7 * x) * band, (0.3 + 0.5 * y) * band, (0.8 - 0.5 * x * y) * band]
    return Image.fromarray(np.rint(np.stack(np.broadcast_arrays(*channels), -1) * 255).astype(np.uint8))


def gps_exif() -> Image.Exif:
    """EXIF as a phone writes it: camera, capture time with its offset, and the position."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Apple"
    exif[ExifTags.Base.Model] = "iPhone 15 Pro"
    exif[ExifTags.Base.DateTime] = "2024:06:02 09:00:00"
    detail = exif.get_ifd(ExifTags.IFD.Exif)
    detail[ExifTags.Base.DateTimeOriginal] = "2024:05:01 14:03:22"
    detail[ExifTags.Base.OffsetTimeOriginal] = "+02:00"
    detail[ExifTags.Base.LensModel] = "iPhone 15 Pro back camera 6.765mm f/1.78"
    exif.get_ifd(ExifTags.IFD.GPSInfo).update(GPS_TAGS)
    return exif


def gps_jpeg(path: Path) -> Path:
    data = save(gradient(), "JPEG", exif=gps_exif(), quality=95)
    reread = Image.open(io.BytesIO(data)).getexif().get_ifd(ExifTags.IFD.GPSInfo)
    assert reread.get(ExifTags.GPS.GPSLatitudeRef) == "N"  # the input really carries a position
    path.write_bytes(data)
    return path


def assert_clean_srgb(data: bytes) -> None:
    """An output: no EXIF (so no GPS IFD), no XMP but modomo's own marking (nothing of the input's), and the
    sRGB profile embedded."""
    image = Image.open(io.BytesIO(data))
    assert "exif" not in image.info
    xmp = image.info.get("xmp")
    assert xmp is None or (b"compositeWithTrainedAlgorithmicMedia" in xmp and b"GPS" not in xmp.upper())
    assert not image.getexif() and not image.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    assert undated(image.info.get("icc_profile") or b"") == undated(srgb_profile_bytes())
    assert is_srgb(image.info["icc_profile"])


# --- ICC profiles -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "options"), [("PNG", {}), ("HEIF", {"quality": -1, "chroma": 444})])
def test_display_p3_is_converted_to_srgb(fmt, options):
    icc = p3_profile()
    assert ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))).strip() == "Test Display P3"
    data = save(patches(P3_PATCHES), fmt, icc_profile=icc, **options)  # lossless HEIC, as iPhones tag theirs

    decoded = decode(data, f"p3.{fmt.lower()}")

    got = patch_colours(decoded, len(P3_PATCHES))
    expected = np.array([p3_to_srgb(colour) for colour in P3_PATCHES])
    assert np.abs(got - expected).max() <= 2, (got, expected)
    raw = patch_colours(Image.open(io.BytesIO(data)).convert("RGB"), len(P3_PATCHES))
    assert np.abs(got - raw).max() >= 20  # read as is, the saturated P3 colours would be far off
    assert got[-1].tolist() == [128, 128, 128]  # white point kept: grey stays grey
    assert "icc_profile" not in decoded.info  # the pixels are sRGB now; the P3 tag must not travel on


def test_srgb_tagged_photo_keeps_its_exact_pixels():
    image = patches(P3_PATCHES)
    decoded = decode(save(image, "PNG", icc_profile=srgb_profile_bytes()), "srgb.png")
    assert decoded.tobytes() == image.tobytes()


@pytest.mark.parametrize("icc", [b"not a real profile", p3_profile()[:200]])
def test_broken_profile_keeps_the_pixels(icc):
    image = patches(P3_PATCHES)
    decoded = decode(save(image, "PNG", icc_profile=icc), "broken.png")
    assert decoded.tobytes() == image.tobytes()


# --- HEIC ---------------------------------------------------------------------------------------------------


def heic_on_its_side(path: Path) -> Path:
    """A HEIC stored landscape, 120x80, with a red top-left corner and EXIF orientation 6 (turn 90 deg CW)."""
    stored = Image.new("RGB", (120, 80), BLUE)
    stored.paste(RED, (0, 0, 24, 24))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    exif[ExifTags.Base.Make] = "Apple"
    exif[ExifTags.Base.Model] = "iPhone 13"
    stored.save(path, "HEIF", exif=exif.tobytes(), quality=95)
    return path


def test_heic_is_decoded_upright_once(tmp_path):
    assert {".heic", ".heif"} <= IMAGE_SUFFIXES
    data = heic_on_its_side(tmp_path / "IMG_0001.HEIC").read_bytes()
    assert b"irot" in data  # the container itself says to rotate, not only EXIF

    image = decode(data, "IMG_0001.HEIC")

    # Upright, an orientation-6 photo is portrait and its stored top-left corner is at the top right.
    assert image.mode == "RGB" and image.size == (80, 120)
    corners = {"top left": (4, 4), "top right": (75, 4), "bottom left": (4, 115), "bottom right": (75, 115)}
    colours = {name: image.getpixel(point) for name, point in corners.items()}
    assert np.abs(np.subtract(colours.pop("top right"), RED)).max() <= 16, colours
    assert all(np.abs(np.subtract(colour, BLUE)).max() <= 16 for colour in colours.values()), colours
    assert image.info["capture"] == {"camera": "Apple iPhone 13"}


def test_heic_is_not_rotated_again_when_its_exif_still_says_to(tmp_path, monkeypatch):
    """A HEIF opener that leaves EXIF orientation 6 in place (pillow-heif resets it to 1) must not rotate twice."""
    import pillow_heif.as_plugin

    monkeypatch.setattr(pillow_heif.as_plugin, "set_orientation", lambda info: 6)  # keeps EXIF as written
    opened = Image.open(heic_on_its_side(tmp_path / "IMG_0002.HEIC"))
    assert opened.getexif()[ExifTags.Base.Orientation] == 6 and opened.size == (80, 120)

    image = decode((tmp_path / "IMG_0002.HEIC").read_bytes(), "IMG_0002.HEIC")

    assert image.size == (80, 120)
    assert np.abs(np.subtract(image.getpixel((75, 4)), RED)).max() <= 16


def test_folder_listing_picks_up_heic(tmp_path):
    heic_on_its_side(tmp_path / "IMG_0001.HEIC")
    heic_on_its_side(tmp_path / "nested.heif")
    (tmp_path / "notes.txt").write_text("not a photo\n")
    assert sorted(item.key for item in collect_inputs([tmp_path])) == ["IMG_0001.HEIC", "nested.heif"]


# --- capture facts and clean outputs ------------------------------------------------------------------------


def test_capture_facts_from_a_phone_jpeg_leave_out_gps(tmp_path):
    decoded = decode(gps_jpeg(tmp_path / "phone.jpg").read_bytes(), "phone.jpg")
    assert decoded.info["capture"] == {
        "taken": "2024-05-01T14:03:22+02:00",
        "camera": "Apple iPhone 15 Pro",
        "lens": "iPhone 15 Pro back camera 6.765mm f/1.78",
    }
    assert set(decoded.info) == {"capture"}  # no EXIF (with its GPS IFD) travels on with the pixels
    assert "gps" not in json.dumps(decoded.info).lower()


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({}, {}),
        ({ExifTags.Base.DateTime: "2023:12:31 23:59:59"}, {"taken": "2023-12-31T23:59:59"}),
        ({ExifTags.Base.DateTime: "0000:00:00 00:00:00", ExifTags.Base.Model: "  X100V \x00"}, {"camera": "X100V"}),
        ({ExifTags.Base.Make: "Canon", ExifTags.Base.Model: "Canon EOS R5"}, {"camera": "Canon EOS R5"}),
        ({ExifTags.Base.Make: "NIKON CORPORATION", ExifTags.Base.Model: "NIKON D750"}, {"camera": "NIKON D750"}),
        ({ExifTags.Base.Make: "Google", ExifTags.Base.Model: "Pixel 8"}, {"camera": "Google Pixel 8"}),
    ],
)
def test_capture_facts(tags, expected):
    exif = Image.Exif()
    exif.update(tags)
    exif.get_ifd(ExifTags.IFD.GPSInfo).update(GPS_TAGS)
    assert capture_facts(exif) == expected


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_encoded_outputs_carry_srgb_and_no_exif(tmp_path, fmt):
    decoded = decode(gps_jpeg(tmp_path / "phone.jpg").read_bytes(), "phone.jpg")
    assert_clean_srgb(encode(decoded, fmt))
    # Even an image that still holds EXIF and another profile in its info writes neither.
    decoded.info.update(exif=gps_exif().tobytes(), icc_profile=p3_profile())
    assert_clean_srgb(encode(decoded, fmt))


def test_restyled_phone_photo_keeps_capture_facts_but_not_its_position(tiny_bundle, tmp_path):
    photo = gps_jpeg(tmp_path / "phone.jpg")

    summary = restyle(tiny_bundle, photo, tmp_path / "out", steps=1)

    [record] = summary["images"]
    outputs = record["outputs"]
    for kind in ("result", "thumbnail"):
        data = Path(outputs[kind]).read_bytes()
        assert b"Exif\x00\x00" not in data  # no EXIF block anywhere, not only none that Pillow finds
        assert_clean_srgb(data)
    metadata_text = Path(outputs["metadata"]).read_text()
    assert "gps" not in metadata_text.lower()
    capture = json.loads(metadata_text)["capture"]
    assert capture["camera"] == "Apple iPhone 15 Pro" and capture["taken"] == "2024-05-01T14:03:22+02:00"
