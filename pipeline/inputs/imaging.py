"""Image decoding, sizing and encoding: every input becomes an upright 8-bit sRGB image or an ImageError."""

from __future__ import annotations

import functools
import io
import math
import re
import struct
import warnings
from datetime import datetime

import numpy as np
from PIL import EpsImagePlugin, ExifTags, Image, ImageCms, ImageFile, ImageOps
from pillow_heif import register_heif_opener

from pipeline.errors import ImageError

# Phones save HEIC by default; registered before IMAGE_SUFFIXES is computed so folders list .heic/.heif too.
register_heif_opener()

# zlib level 3, not Pillow's 6: a 4032x3024 result encodes about twice as fast for a few percent more bytes
# (benchmarks/README.md, "PNG compression level"; tests/run/test_figures.py checks results are written at it).
PNG_COMPRESS_LEVEL = 3
_FORMATS = {
    "png": ("PNG", "image/png", ".png", {"optimize": False, "compress_level": PNG_COMPRESS_LEVEL}),
    "jpeg": ("JPEG", "image/jpeg", ".jpg", {"quality": 92}),
    "webp": ("WEBP", "image/webp", ".webp", {"quality": 90}),
}
_ALIASES = {"jpg": "jpeg"}
# Pillow recognises these from their headers but has no pixel decoder (MPEG would come out all black).
_IDENTIFY_ONLY = {"MPEG"}
_SIXTEEN_BIT = {"I;16", "I;16B", "I;16L", "I;16N"}
# Pillow's plugins report bad data with any of these, not with one exception type.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError)
_PROFILE_ERRORS = (ImageCms.PyCMSError, OSError, ValueError, TypeError)
# Relative colorimetric: see _to_srgb for why.
_INTENT = ImageCms.Intent.RELATIVE_COLORIMETRIC
_EXIF_ERRORS = (*_DECODE_ERRORS, KeyError, struct.error)
# (date tag, its UTC-offset tag): DateTimeOriginal with OffsetTimeOriginal, else DateTime with OffsetTime.
_TAKEN_TAGS = (
    (ExifTags.Base.DateTimeOriginal, ExifTags.Base.OffsetTimeOriginal),
    (ExifTags.Base.DateTime, ExifTags.Base.OffsetTime),
)
_UTC_OFFSET = re.compile(r"[+-]\d{2}:\d{2}")


def _decodable(fmt: str) -> bool:
    """Whether Pillow can actually produce pixels for a format it can identify."""
    factory = Image.OPEN[fmt][0]
    if isinstance(factory, type) and issubclass(factory, ImageFile.StubImageFile):
        return False
    if fmt == "EPS":
        return EpsImagePlugin.has_ghostscript()
    return fmt not in _IDENTIFY_ONLY


def _image_suffixes() -> frozenset[str]:
    """Lower-case suffixes of every format Pillow can open and decode here."""
    extensions = Image.registered_extensions()  # also loads every plugin, filling Image.OPEN
    return frozenset(ext.lower() for ext, fmt in extensions.items() if fmt in Image.OPEN and _decodable(fmt))


IMAGE_SUFFIXES: frozenset[str] = _image_suffixes()


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _too_large(width: int, height: int, max_pixels: int) -> ImageError:
    return ImageError(f"image too large: {width}x{height} pixels (limit {max_pixels})")


def _pillow_open():
    """Pillow's own `Image.open`.

    Importing ultralytics replaces it process-wide with a wrapper that, on any file Pillow cannot
    identify, tries to pip-install a HEIF plugin: a network call and a misleading error for a bad file.
    """
    opener = Image.open
    if getattr(opener, "__module__", "PIL.Image") != "PIL.Image":
        opener = getattr(opener, "__globals__", {}).get("_image_open", opener)
    return opener


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Open from the header only and enforce the pixel limit before anything is decoded."""
    try:
        # Our own max_pixels check replaces Pillow's warning, which would fire for legitimate 90 MP photos.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = _pillow_open()(io.BytesIO(data))
    except Image.UnidentifiedImageError as exc:
        raise ImageError("not an image (unrecognised format)") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow refuses at twice its own limit without telling us the dimensions, only the pixel count.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        count = f"{found.group(1)} pixels" if found else "exceeds Pillow's decompression-bomb limit"
        raise ImageError(f"image too large: {count} (limit {max_pixels})") from exc
    except _DECODE_ERRORS as exc:
        raise ImageError(f"truncated or corrupt image: {_one_line(exc)}") from exc
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise _too_large(width, height, max_pixels)
    return image


def _scale_to_8bit(image: Image.Image) -> Image.Image:
    """Map 16-bit, 32-bit and float greyscale to L by value range; Pillow's convert would clip at 255."""
    values = np.asarray(image, dtype=np.float64)
    if image.mode in _SIXTEEN_BIT:
        values = values / 257.0
    else:
        high = float(values.max()) if values.size else 0.0
        if image.mode == "F" and high <= 1.0:
            values = values * 255.0
        elif high > 65535.0:
            low = float(values.min())
            values = (values - low) * (255.0 / (high - low))
        elif high > 255.0:
            # Mode I almost always carries 16-bit samples (older Pillow opened 16-bit PNGs as I).
            values = values / 257.0
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), mode="L")


def _flatten_alpha(image: Image.Image) -> Image.Image:
    """Composite on white so transparent areas do not turn into whatever colour hides under them."""
    if image.mode == "La":
        image = image.convert("LA")  # Pillow has no direct La -> RGBA conversion
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


@functools.cache
def _srgb() -> ImageCms.ImageCmsProfile:
    """The sRGB profile, built once: every decode converts to it and every encode embeds it."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@functools.cache
def _srgb_bytes() -> bytes:
    """The sRGB profile as ICC bytes, serialised once for every encoded output."""
    return _srgb().tobytes()


@functools.cache
def _probe() -> Image.Image:
    """Colours that show whether a transform changes anything.

    Every mix of five levels per channel catches other primaries; a grey ramp in steps of 5 catches another
    tone curve (sRGB primaries with a plain 2.2 gamma differ mostly in the shadows).
    """
    levels = (0, 64, 128, 192, 255)
    mixes = [(r, g, b) for r in levels for g in levels for b in levels]
    colours = mixes + [(v, v, v) for v in range(0, 256, 5)]
    return Image.frombytes("RGB", (len(colours), 1), bytes(v for colour in colours for v in colour))


def _is_identity(transform: ImageCms.ImageCmsTransform) -> bool:
    """Whether a transform leaves colours within one level: an sRGB-tagged photo is then kept bit for bit."""
    probe = _probe()
    moved = np.asarray(ImageCms.applyTransform(probe, transform), dtype=np.int16)
    return int(np.abs(moved - np.asarray(probe, dtype=np.int16)).max()) <= 1


def _to_srgb(image: Image.Image, icc: bytes | None) -> Image.Image:
    """Convert RGB pixels from their embedded profile (Display P3, Adobe RGB, ...) to sRGB.

    The models, the quality checks and most viewers of the outputs read pixels as sRGB; a P3 photo
    read as is looks dull and shifted. The intent is relative colorimetric: colours sRGB can show keep
    their values (white stays white) and only the out-of-gamut ones clip to the gamut edge, where
    perceptual would compress every colour of a LUT profile. The matrix profiles phones and cameras
    embed have no perceptual table, so relative colorimetric is also what they would get anyway.
    A broken profile keeps the pixels as they are rather than losing the photo.
    """
    if not icc:
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if source.profile.xcolor_space.strip() != "RGB":
            return image  # grey or other profiles do not describe RGB pixels
        transform = ImageCms.buildTransform(source, _srgb(), "RGB", "RGB", _INTENT)
        if _is_identity(transform):
            return image
        return ImageCms.applyTransform(image, transform)
    except _PROFILE_ERRORS:
        return image


def _cmyk_to_rgb(image: Image.Image) -> Image.Image:
    """Use the embedded ICC profile when there is one: plain conversion gives dull, shifted colours."""
    icc = image.info.get("icc_profile")
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(image, source, _srgb(), outputMode="RGB")
            if converted is not None:
                return converted
        except _PROFILE_ERRORS:
            pass  # a broken profile should not cost us the photo
    return image.convert("RGB")


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB."""
    if image.mode in _SIXTEEN_BIT or image.mode in ("I", "F"):
        image = _scale_to_8bit(image)
    if image.mode == "CMYK":
        return _cmyk_to_rgb(image)
    has_alpha = image.mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in image.info
    if has_alpha:
        return _flatten_alpha(image)
    return image if image.mode == "RGB" else image.convert("RGB")


def _upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; a photo with unreadable EXIF is kept as stored rather than rejected.

    HEIC/HEIF is upright already: libheif applies the container's irot/imir boxes while decoding (the
    HEIF rule: they, not EXIF, say how to show the image), and pillow-heif then resets the EXIF
    orientation to 1, recording the old value as `original_orientation`. Rotating by EXIF again would
    turn a portrait photo on its side.
    """
    if image.format == "HEIF" and "original_orientation" in image.info:
        return image.copy()  # a copy, because the caller closes the opened image
    try:
        return ImageOps.exif_transpose(image)
    except _DECODE_ERRORS:
        return image.copy()  # a copy, because the caller closes the opened image


def _text(value: object) -> str:
    """An EXIF ASCII value as trimmed one-line text; padding NULs and non-text values come out empty."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return ""
    text = " ".join(value.replace("\x00", " ").split())
    return text[:120] if text.isprintable() else ""


def _taken(stamp: object, offset: object) -> str | None:
    """EXIF "YYYY:MM:DD HH:MM:SS" as ISO 8601, with its UTC offset when one is recorded; None if unreadable."""
    try:
        when = datetime.strptime(_text(stamp), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None  # absent, blank ("    :  :  ") or zeroed ("0000:00:00 00:00:00")
    zone = _text(offset)
    return when.isoformat() + (zone if _UTC_OFFSET.fullmatch(zone) else "")


def _camera(make: str, model: str) -> str:
    """Make and model, without the make twice when the model repeats it ("Canon" + "Canon EOS R5")."""
    if make and model.lower().startswith(make.split()[0].lower()):
        return model  # also "NIKON CORPORATION" + "NIKON D750"
    return " ".join(part for part in (make, model) if part)


def capture_facts(exif: Image.Exif) -> dict[str, str]:
    """When and with what a photo was taken, for the result's metadata; never where (no GPS tag is read)."""
    base = {tag: exif.get(tag) for tag in (ExifTags.Base.Make, ExifTags.Base.Model, ExifTags.Base.DateTime)}
    try:
        detail = dict(exif.get_ifd(ExifTags.IFD.Exif))
    except _EXIF_ERRORS:
        detail = {}
    tags = {**base, **detail}
    facts: dict[str, str] = {}
    taken = next(filter(None, (_taken(tags.get(date), tags.get(zone)) for date, zone in _TAKEN_TAGS)), None)
    if taken:
        facts["taken"] = taken
    camera = _camera(_text(tags.get(ExifTags.Base.Make)), _text(tags.get(ExifTags.Base.Model)))
    if camera:
        facts["camera"] = camera
    lens = _text(tags.get(ExifTags.Base.LensModel))
    if lens:
        facts["lens"] = lens
    return facts


def _capture(image: Image.Image) -> dict[str, str]:
    """The capture facts of an opened image; unreadable EXIF gives none rather than failing the photo."""
    try:
        return capture_facts(image.getexif())
    except _EXIF_ERRORS:
        return {}


def _normalise(image: Image.Image) -> Image.Image:
    """Upright 8-bit sRGB pixels that keep nothing of the source's metadata but its capture facts.

    The source's ICC profile, EXIF and XMP no longer describe the pixels (or would leak the photo's
    position into outputs), so the result's info holds only "capture".
    """
    capture = _capture(image)
    result = _to_rgb(_upright(image))
    if image.mode != "CMYK":  # CMYK has already been converted with its own profile
        result = _to_srgb(result, image.info.get("icc_profile"))
    result.load()
    result.info = {"capture": capture}
    return result


def decode(data: bytes, name: str, *, min_side: int = 64, max_pixels: int = 100_000_000) -> Image.Image:
    """Decode image bytes to an upright sRGB image (first frame only), or raise ImageError with the reason.

    `info["capture"]` holds the photo's capture facts (see `capture_facts`); nothing else of the source's
    metadata is kept.
    """
    # `name` is deliberately unused: the caller prefixes it, so reasons stay free of it.
    if not data:
        raise ImageError("empty file (0 bytes)")
    image = _open(data, max_pixels)
    with image:
        fmt = image.format or "unknown"
        if fmt in Image.OPEN and not _decodable(fmt):
            raise ImageError(f"unsupported format: {fmt} (Pillow can identify it but not decode it)")
        width, height = image.size
        if min(width, height) < min_side:
            raise ImageError(f"image too small: {width}x{height} (minimum {min_side} px per side)")
        try:
            # Truncation only surfaces when the pixels are read, so read them now, not in a later stage.
            image.load()
            result = _normalise(image)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _too_large(width, height, max_pixels) from exc
        except _DECODE_ERRORS as exc:
            raise ImageError(f"truncated or corrupt image: {_one_line(exc)}") from exc
    return result


def fit_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """Size with the long side at `long_side` (rounded to 8), aspect kept, both sides multiples of 8."""
    if width <= 0 or height <= 0 or long_side <= 0:
        raise ValueError(f"sizes must be positive: {width}x{height}, long side {long_side}")
    # Diffusion latents are 1/8 of the pixel size, so every side must be a multiple of 8.
    target = max(8, math.floor(long_side / 8 + 0.5) * 8)
    scale = target / max(width, height)

    def snap(side: int) -> int:
        return max(8, math.floor(side * scale / 8 + 0.5) * 8)

    return snap(width), snap(height)


def resize_to(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Resize with LANCZOS when shrinking and BICUBIC when enlarging; the same image if already that size."""
    if image.size == tuple(size):
        return image
    shrinking = size[0] * size[1] < image.width * image.height
    # LANCZOS rings visibly when enlarging; BICUBIC stays smooth.
    resample = Image.Resampling.LANCZOS if shrinking else Image.Resampling.BICUBIC
    return image.resize(size, resample)


def thumbnail(image: Image.Image, long_side: int = 256) -> Image.Image:
    """A copy with the long side at most `long_side`, aspect kept; smaller images are not enlarged."""
    width, height = image.size
    if max(width, height) <= long_side:
        return image.copy()
    scale = long_side / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)


def _format(fmt: str) -> tuple[str, str, str, dict]:
    key = _ALIASES.get(fmt.lower(), fmt.lower())
    if key not in _FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; expected one of {', '.join(_FORMATS)}")
    return _FORMATS[key]


def encode(image: Image.Image, fmt: str, xmp: bytes | None = None) -> bytes:
    """Encode to png, jpeg or webp bytes, tagged sRGB and never with EXIF; with `xmp`, that packet embedded
    (PNG: an iTXt chunk `XML:com.adobe.xmp`; JPEG: an APP1 segment; WebP: an XMP chunk).

    The pixels are sRGB (decode converted them), so the profile spares colour-managed viewers a guess;
    EXIF is never written, so no output carries the input's GPS position. Grey images get no profile:
    an RGB profile is invalid on them.
    """
    pil_format, _, _, options = _format(fmt)
    if pil_format == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")  # JPEG has no alpha or palette
    icc = _srgb_bytes() if image.mode in ("RGB", "RGBA") else None  # None also stops PNG reusing image.info's
    if xmp is not None and pil_format == "PNG":
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8"), zip=False)
        options = {**options, "pnginfo": info}
    elif xmp is not None:
        options = {**options, "xmp": xmp}
    buffer = io.BytesIO()
    image.save(buffer, pil_format, icc_profile=icc, exif=b"", **options)
    return buffer.getvalue()


def content_type(fmt: str) -> str:
    """MIME type for an output format."""
    return _format(fmt)[1]


def extension(fmt: str) -> str:
    """File suffix for an output format, with the dot."""
    return _format(fmt)[2]
