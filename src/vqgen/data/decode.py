"""Decoding one image file safely: any format Pillow reads, to 8-bit RGB, or one `UnreadableImage`
saying why not (empty, missing, truncated, not an image, a decompression bomb, corrupt data)."""

from __future__ import annotations

from pathlib import Path
from warnings import catch_warnings, simplefilter

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

WHITE = (255, 255, 255, 255)


class UnreadableImage(ValueError):
    """A file with an image suffix that does not decode; the message says why."""


def open_rgb(path: str | Path) -> Image.Image:
    """Decode one image file to RGB: first frame, EXIF orientation applied, transparency on white."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise UnreadableImage("empty file")
        with catch_warnings():
            simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.seek(0)
                img.load()  # decodes everything now, so truncation shows here
                return _to_rgb(ImageOps.exif_transpose(img))
    except UnreadableImage:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise UnreadableImage(f"over {Image.MAX_IMAGE_PIXELS} pixels") from None
    except UnidentifiedImageError:
        raise UnreadableImage("not a recognised image format") from None
    except EOFError:
        raise UnreadableImage("truncated") from None
    except FileNotFoundError:
        raise UnreadableImage("missing") from None
    except OSError as e:
        if e.errno is not None:  # the file system's error, not the decoder's
            raise UnreadableImage(f"cannot read: {e.strerror}") from None
        if "truncated" in str(e):
            raise UnreadableImage("truncated") from None
        raise UnreadableImage(f"corrupt: {e}") from None
    except Exception as e:  # PIL plugins also raise SyntaxError, ValueError, struct.error, ... on bad data
        raise UnreadableImage(f"corrupt: {type(e).__name__}: {e}") from None


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit samples (Pillow holds 16-bit grey PNGs this way); keep the top 8 bits' worth
        grey = np.clip(np.asarray(img, dtype=np.float64), 0, 65535) / 257
        return Image.fromarray(grey.round().astype(np.uint8), "L").convert("RGB")
    if img.mode in ("LA", "La", "PA", "RGBA", "RGBa") or "transparency" in img.info:
        return Image.alpha_composite(Image.new("RGBA", img.size, WHITE), img.convert("RGBA")).convert("RGB")
    return img.convert("RGB")
