"""Image decoding, sizing and encoding: every input becomes an upright 8-bit RGB image or an ImageError."""

from __future__ import annotations

import io
import math
import re
import warnings

import numpy as np
from PIL import EpsImagePlugin, Image, ImageCms, ImageFile, ImageOps

from pipeline.errors import ImageError

_FORMATS = {
    "png": ("PNG", "image/png", ".png", {"optimize": False}),
    "jpeg": ("JPEG", "image/jpeg", ".jpg", {"quality": 92}),
    "webp": ("WEBP", "image/webp", ".webp", {"quality": 90}),
}
_ALIASES = {"jpg": "jpeg"}
# Pillow recognises these from their headers but has no pixel decoder (MPEG would come out all black).
_IDENTIFY_ONLY = {"MPEG"}
_SIXTEEN_BIT = {"I;16", "I;16B", "I;16L", "I;16N"}
# Pillow's plugins report bad data with any of these, not with one exception type.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError)


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


def _cmyk_to_rgb(image: Image.Image) -> Image.Image:
    """Use the embedded ICC profile when there is one: plain conversion gives dull, shifted colours."""
    icc = image.info.get("icc_profile")
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(
                image, source, ImageCms.createProfile("sRGB"), outputMode="RGB"
            )
            if converted is not None:
                return converted
        except (ImageCms.PyCMSError, OSError, ValueError):
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
    """Apply the EXIF orientation; a photo with unreadable EXIF is kept as stored rather than rejected."""
    try:
        return ImageOps.exif_transpose(image)
    except _DECODE_ERRORS:
        return image.copy()  # a copy, because the caller closes the opened image


def decode(data: bytes, name: str, *, min_side: int = 64, max_pixels: int = 100_000_000) -> Image.Image:
    """Decode image bytes to an upright RGB image (first frame only), or raise ImageError with the reason."""
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
            result = _to_rgb(_upright(image))
            result.load()
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


def encode(image: Image.Image, fmt: str) -> bytes:
    """Encode to png, jpeg or webp bytes."""
    pil_format, _, _, options = _format(fmt)
    if pil_format == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")  # JPEG has no alpha or palette
    buffer = io.BytesIO()
    image.save(buffer, pil_format, **options)
    return buffer.getvalue()


def content_type(fmt: str) -> str:
    """MIME type for an output format."""
    return _format(fmt)[1]


def extension(fmt: str) -> str:
    """File suffix for an output format, with the dot."""
    return _format(fmt)[2]
