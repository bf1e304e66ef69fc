"""The PDF builder: Chinese text really embedded (extractable, with the vendored font), QR
codes that decode, and rendering off the event loop."""

from __future__ import annotations

import io

import pypdf
from fpdf import FPDF

from app import pdf
from tests.factories import decode_qr, pdf_text


def _card() -> FPDF:
    doc = pdf.new_document("A6", title="随申码")
    doc.cell(text="随申码 张* 有效期至 2027-06-01")
    pdf.draw_qr(doc, "HC1:TEST-PAYLOAD", x=20, y=30, size=60)
    return doc


async def test_chinese_text_is_embedded_with_the_vendored_font() -> None:
    content = await pdf.build(_card)
    assert "随申码 张* 有效期至 2027-06-01" in pdf_text(content)
    page = pypdf.PdfReader(io.BytesIO(content)).pages[0]
    assert round(float(page.mediabox.width) / 72 * 25.4) == 105  # A6
    assert b"NotoSansSC" in content and b"/FontFile2" in content  # embedded, not referenced
    assert len(content) < 100_000  # only the glyphs used are embedded


def test_qr_png_decodes_to_its_text() -> None:
    assert decode_qr(pdf.qr_png("HC1:TEST-PAYLOAD")) == "HC1:TEST-PAYLOAD"


def test_pdf_response_is_inline_pdf() -> None:
    response = pdf.pdf_response(b"%PDF-1.3", "card.pdf")
    assert response.media_type == "application/pdf"
    assert response.headers["content-disposition"] == 'inline; filename="card.pdf"'
