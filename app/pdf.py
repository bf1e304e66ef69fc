"""Printable documents (kiosk cards and slips, e-invoices): fpdf2 with the vendored CJK font
(`app/fonts/`, Noto Sans SC), QR codes drawn from the `qrcode` package, rendered off the
event loop (parsing the font takes ~0.3 s)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import anyio.to_thread
import qrcode
import qrcode.constants
from fpdf import FPDF
from starlette.responses import Response

FONT = Path(__file__).parent / "fonts" / "NotoSansSC-Regular.ttf"
FAMILY = "cjk"

# Paper sizes in millimetres (portrait).
PAGE_SIZES: dict[str, tuple[float, float]] = {"A4": (210.0, 297.0), "A6": (105.0, 148.0)}
Paper = Literal["A4", "A6"]


def new_document(paper: Paper, *, title: str, author: str = "suishen") -> FPDF:
    """A one-page document with the CJK font selected (10 pt) and 8 mm margins."""
    pdf = FPDF(unit="mm", format=PAGE_SIZES[paper])
    pdf.set_title(title)
    pdf.set_author(author)
    pdf.set_creator("suishen")
    pdf.set_margins(8, 8, 8)
    pdf.set_auto_page_break(auto=True, margin=8)
    pdf.add_font(FAMILY, fname=str(FONT))
    pdf.add_page()
    pdf.set_font(FAMILY, size=10)
    return pdf


def qr_png(text: str, *, box_size: int = 8) -> bytes:
    """A QR code as PNG bytes (error correction M, quiet zone of 4 modules)."""
    qr = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=box_size, border=4
    )
    qr.add_data(text)
    qr.make(fit=True)
    out = io.BytesIO()
    qr.make_image().save(out, format="PNG")
    return out.getvalue()


def draw_qr(pdf: FPDF, text: str, *, x: float, y: float, size: float) -> None:
    """Place a QR code of `text`, `size` mm square, with its top-left corner at (x, y)."""
    pdf.image(io.BytesIO(qr_png(text)), x=x, y=y, w=size, h=size)


def render(pdf: FPDF) -> bytes:
    return bytes(pdf.output())


async def build(make: Callable[[], FPDF]) -> bytes:
    """Build and render a document in a worker thread, so the event loop never waits on it."""
    return await anyio.to_thread.run_sync(lambda: render(make()))


def pdf_response(content: bytes, filename: str) -> Response:
    """A PDF answer the browser shows inline (the kiosk prints it) under `filename`."""
    return Response(
        content,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{filename}"'},
    )
