"""Reading labels back the way a scanner or a person would: shared by the rendering unit
tests and the end-to-end label tests. Imports nothing from the project."""

from __future__ import annotations

import io
from pathlib import Path
from urllib.parse import unquote, urlparse

import pypdf
import zxingcpp
from PIL import Image

Found = tuple[zxingcpp.BarcodeFormat, str]


def decode(image: Image.Image) -> list[Found]:
    """Every barcode zxing-cpp finds in `image`, as (format, text)."""
    return [(found.format, found.text) for found in zxingcpp.read_barcodes(image)]


def decode_png(data: bytes) -> list[Found]:
    return decode(Image.open(io.BytesIO(data)))


def pdf_page(data: bytes) -> pypdf.PageObject:
    """The one page of a label PDF (AssertionError if there are more)."""
    reader = pypdf.PdfReader(io.BytesIO(data))
    assert len(reader.pages) == 1, f"a label has one page, not {len(reader.pages)}"
    return reader.pages[0]


def pdf_text(data: bytes) -> str:
    return pdf_page(data).extract_text()


def pdf_barcodes(data: bytes) -> set[Found]:
    """Every barcode in every image embedded in the label PDF."""
    images = [image.image for image in pdf_page(data).images]
    return {item for image in images if image is not None for item in decode(image)}


def uri_path(uri: str) -> Path:
    """The local path of a `file://` URI (AssertionError for any other scheme)."""
    parsed = urlparse(uri)
    assert parsed.scheme == "file", f"not a file:// URI: {uri}"
    return Path(unquote(parsed.path))
