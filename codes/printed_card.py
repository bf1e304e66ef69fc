"""The printed code's A6 card for a kiosk's printer: QR, masked name, issue and expiry
dates (Shanghai time), the issuing point, and a note that the card carries no colour."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from fpdf import FPDF

from app.pdf import build, draw_qr, new_document
from codes.printed import PrintedCard

SHANGHAI = timezone(timedelta(hours=8))
QR_MM = 72.0


def card_date(when: datetime) -> str:
    """The day printed on a card (Shanghai, where the card is used)."""
    return when.astimezone(SHANGHAI).strftime("%Y-%m-%d")


def _layout(card: PrintedCard) -> FPDF:
    pdf = new_document("A6", title="随申码 离线码")
    width = pdf.w - pdf.l_margin - pdf.r_margin
    pdf.set_font_size(14)
    pdf.cell(width, 8, "随申码 · 离线码", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font_size(8)
    pdf.cell(width, 5, "Suishen printed code", align="C", new_x="LMARGIN", new_y="NEXT")
    draw_qr(pdf, card.code, x=(pdf.w - QR_MM) / 2, y=pdf.get_y() + 1, size=QR_MM)
    pdf.set_y(pdf.get_y() + QR_MM + 3)
    pdf.set_font_size(16)
    pdf.cell(width, 9, card.masked_name, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font_size(9)
    for label, value in (
        ("签发日期 Issued", card_date(card.issued_at)),
        ("有效期至 Valid until", card_date(card.expires_at)),
        ("签发点 Issued at", card.issuing_point),
    ):
        pdf.multi_cell(width, 5, f"{label}: {value}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font_size(7)
    pdf.multi_cell(
        width,
        4,
        "本码不含健康状态颜色，核验时以实时状态为准；补办新码后旧码作废。"
        "No colour on this card: gates check the current status. A new card voids this one.",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    return pdf


async def card_pdf(card: PrintedCard) -> bytes:
    return await build(lambda: _layout(card))
