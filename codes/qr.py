"""QR images of a code string (PNG through Pillow, SVG), error correction M as the size
goal in docs/code-format.md assumes."""

from __future__ import annotations

import io

import qrcode
import qrcode.image.svg


def _qr(text: str, box_size: int) -> qrcode.QRCode:
    qr = qrcode.QRCode(
        version=None,
        error_correction=qrcode.constants.ERROR_CORRECT_M,
        box_size=box_size,
        border=4,  # the quiet zone ISO/IEC 18004 asks for
    )
    qr.add_data(text)
    qr.make(fit=True)
    return qr


def png(text: str, box_size: int = 8) -> bytes:
    buffer = io.BytesIO()
    _qr(text, box_size).make_image().save(buffer, format="PNG")
    return buffer.getvalue()


def svg(text: str, box_size: int = 8) -> bytes:
    image = _qr(text, box_size).make_image(image_factory=qrcode.image.svg.SvgPathImage)
    data: bytes = image.to_string(encoding="utf-8")
    return data
