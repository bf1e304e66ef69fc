"""The printable e-invoice: an A4 page laid out like Shanghai's outpatient receipt
(上海市医疗门诊收费票据（电子）), drawn from the signed content only, with the QR code that
opens the public verification."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from fpdf import FPDF

from app import pdf

DIGITS = "零壹贰叁肆伍陆柒捌玖"
UNITS = ["", "拾", "佰", "仟"]
GROUPS = ["", "万", "亿", "万亿"]
PAYERS = (
    ("fund_fen", "医保统筹基金支付"),
    ("current_account_fen", "个人账户当年账户支付"),
    ("accumulated_account_fen", "个人账户历年账户支付"),
    ("cash_fen", "个人现金支付"),
)
SEGMENTS = (
    ("self_segment_fen", "自负（起付段）"),
    ("copay_fen", "自付（共付段）"),
    ("self_paid_items_fen", "自费"),
)
CLASS_NAMES = {"A": "甲", "B": "乙", "C": "丙"}


def yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100:,}.{abs(fen) % 100:02d}"


def _four(n: int) -> str:
    """0 < n < 10000 in capital digits, zeros collapsed as the banks write them."""
    out, zero = "", False
    for place in range(3, -1, -1):
        digit = n // 10**place % 10
        if digit == 0:
            zero = bool(out)
            continue
        if zero:
            out += "零"
            zero = False
        out += DIGITS[digit] + UNITS[place]
    return out


def capital_amount(fen: int) -> str:
    """An amount in financial capitals (大写), e.g. 12345 fen -> 壹佰贰拾叁元肆角伍分."""
    prefix = "负" if fen < 0 else ""
    fen = abs(fen)
    whole, jiao, cents = fen // 100, fen // 10 % 10, fen % 10
    text = ""
    if whole:
        groups: list[str] = []
        index, lower, below = 0, 0, False  # the group under this one; anything under it?
        while whole:
            part = whole % 10_000
            if part:
                # 零 where the digits under this group start with a zero: 壹拾万零壹佰
                gap = "零" if below and lower < 1000 else ""
                groups.insert(0, _four(part) + GROUPS[index] + gap)
            below, lower = below or part > 0, part
            whole //= 10_000
            index += 1
        text = "".join(groups).rstrip("零") + "元"
    if jiao:
        text += DIGITS[jiao] + "角"
    elif cents and text:
        text += "零"
    if cents:
        text += DIGITS[cents] + "分"
    if not jiao and not cents:
        text = (text or "零元") + "整"
    return prefix + text


def _local(issued_at: str, zone: timezone) -> str:
    moment = datetime.fromisoformat(issued_at.replace("Z", "+00:00")).astimezone(zone)
    return f"{moment:%Y-%m-%d %H:%M:%S}"


def draw_invoice(
    content: dict[str, Any], *, check_code: str, verify_url: str, zone: timezone
) -> FPDF:
    red = content["kind"] == "red"
    doc = pdf.new_document("A4", title=f"医疗收费电子票据 {content['number']}")
    width = doc.w - doc.l_margin - doc.r_margin
    if red:
        doc.set_text_color(200, 0, 0)
    doc.set_font(pdf.FAMILY, size=16)
    title = "上海市医疗门诊收费票据（电子）"
    doc.cell(
        width, 10, title + ("（红字冲红）" if red else ""), align="C", new_x="LMARGIN", new_y="NEXT"
    )
    doc.set_text_color(0, 0, 0)
    pdf.draw_qr(doc, verify_url, x=doc.w - doc.r_margin - 30, y=20, size=30)
    doc.set_font(pdf.FAMILY, size=10)
    info = [
        ("票据代码", content["code"]),
        ("票据号码", content["number"]),
        ("校验码", check_code),
        ("开票日期", _local(content["issued_at"], zone)),
        ("医疗机构", content["hospital"]["name"]),
        ("科室", content["department"]),
        ("交款人（患者）", content["patient"]["masked_name"] or "-"),
    ]
    if content.get("payer"):
        info.append(("付款人（家庭信用）", content["payer"]["masked_name"] or "-"))
    if content.get("original"):
        original = content["original"]
        info.append(("原票据", f"代码 {original['code']} 号码 {original['number']}"))
    info.append(("业务流水号", content["encounter_id"]))
    for label, value in info:
        doc.cell(40, 6, label + "：")
        doc.cell(width - 78, 6, str(value), new_x="LMARGIN", new_y="NEXT")
    doc.ln(3)
    _lines_table(doc, content["lines"], width)
    doc.ln(2)
    total = content["total_fen"]
    doc.cell(width, 7, f"合计（大写）：{capital_amount(total)}    （小写）¥{yuan(total)}",
             border=1, new_x="LMARGIN", new_y="NEXT")  # fmt: skip
    doc.ln(2)
    split = content["split"]
    for key, label in PAYERS:
        doc.cell(60, 6, label + "：")
        doc.cell(40, 6, yuan(split.get(key, 0)), align="R", new_x="LMARGIN", new_y="NEXT")
    segments = [f"{label} {yuan(split[key])}" for key, label in SEGMENTS if split.get(key)]
    if segments:
        doc.cell(width, 6, "其中：" + "，".join(segments), new_x="LMARGIN", new_y="NEXT")
    doc.ln(4)
    doc.set_font(pdf.FAMILY, size=8)
    doc.multi_cell(
        width,
        4,
        f"电子签名：{content['hospital']['name']}（ES256，密钥 {content['hospital']['id']}）。"
        f"扫描二维码或访问 {verify_url} 查验真伪。",
        align="L",
    )
    return doc


def _lines_table(doc: FPDF, lines: list[dict[str, Any]], width: float) -> None:
    columns = [("项目名称", width - 110), ("类别", 22), ("医保", 12), ("数量", 16),
               ("单价", 28), ("金额", 32)]  # fmt: skip
    doc.set_fill_color(235, 235, 235)
    for name, w in columns:
        doc.cell(w, 7, name, border=1, align="C", fill=True)
    doc.ln()
    for line in lines:
        cells = [
            line["name"],
            line["category"],
            CLASS_NAMES.get(line["insurance_class"], line["insurance_class"]),
            str(line["quantity"]),
            yuan(line["unit_price_fen"]),
            yuan(line["amount_fen"]),
        ]
        for (_, w), text, align in zip(columns, cells, "LCCRRR", strict=True):
            doc.cell(w, 6, _fit(doc, text, w - 2), border=1, align=align)
        doc.ln()


def _fit(doc: FPDF, text: str, room: float) -> str:
    """Cut a cell's text to its width (an item name may be long), marking the cut."""
    if doc.get_string_width(text) <= room:
        return text
    while text and doc.get_string_width(text + "…") > room:
        text = text[:-1]
    return text + "…"
