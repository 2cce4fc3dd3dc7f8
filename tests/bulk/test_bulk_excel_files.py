"""Bulk files as Excel users make them: UTF-8 (with or without a BOM) and CP949 CSV,
.xlsx workbooks with numbers where text was meant; the result file in the uploaded
format, never with a live formula in it; the templates."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile
from typing import Any

import pytest
from openpyxl import Workbook, load_workbook

from ivr.bulk import charge_rows, files, registrations, xlsx
from ivr.bulk.cells import cell_text, restore_mobile
from ivr.bulk.files import Source, read_file
from ivr.bulk.results import result_file, results_csv
from ivr.bulk.submit import sort_rows
from ivr.bulk.templates import template
from ivr.errors import InvalidInput

CHARGE_HEADER = ["card_id", "amount", "order_name", "installment_months", "ref"]


def workbook(*rows: list[Any]) -> bytes:
    book = Workbook()
    sheet = book.active
    for r in rows:
        sheet.append(r)
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_utf8_csv_with_or_without_bom(bom: bytes) -> None:
    data = bom + "card_id,amount,order_name\ncard_1,1000,월 회비\n".encode()
    f = read_file(data, "csv")
    assert f.source == Source("csv", "utf-8")
    assert f.rows == [{"card_id": "card_1", "amount": "1000", "order_name": "월 회비"}]


@pytest.mark.parametrize("codec", ["cp949", "euc-kr"])
def test_cp949_and_euc_kr_csv_keep_korean_names(codec: str) -> None:
    text = "mobile,name,ref\n010-1234-5678,홍길동,가입\n01022223333,김영희,r2\n"
    f = read_file(text.encode(codec), "csv", ())
    assert f.source == Source("csv", "cp949")
    assert [r["name"] for r in f.rows] == ["홍길동", "김영희"]
    valid, invalid = sort_rows(f.rows, registrations.check_registration_row)
    assert invalid == []
    assert [row["mobile"] for _, row in valid] == ["01012345678", "01022223333"]


def test_a_cp949_only_syllable_is_read() -> None:  # 똠 is in CP949, not in EUC-KR
    f = read_file("mobile,name\n01012345678,똠방\n".encode("cp949"), "csv", ())
    assert f.rows[0]["name"] == "똠방"


def test_a_csv_neither_utf8_nor_cp949_is_refused_whole() -> None:
    with pytest.raises(InvalidInput, match="UTF-8 or CP949"):
        read_file(b"card_id,amount,order_name\ncard_1,1000,\xff\xfe\x81\n", "csv")


def test_a_csv_saved_by_excel_gets_the_mobiles_leading_zero_back() -> None:
    f = read_file(b"mobile,ref\n1012345678,a\n01012345678,b\n212345678,c\n", "csv", ())
    assert [r["mobile"] for r in f.rows] == ["01012345678", "01012345678", "212345678"]


def test_xlsx_numbers_phones_floats_empty_rows_and_a_bad_row() -> None:
    data = workbook(
        CHARGE_HEADER,
        ["card_1", 30000, "회비", 0, "int"],
        [None, None, None, None, None],  # an empty row: skipped, as a blank CSV line
        ["card_1", 30000.0, "회비", 3.0, "whole-float"],
        ["card_1", 30000.5, "회비", 0, "half-won"],
        ["", 1000, "회비", None, "no-card"],
    )
    f = read_file(data, "xlsx")
    assert f.source.format == "xlsx"
    valid, invalid = sort_rows(f.rows, charge_rows.check_row)
    assert [(n, r["amount"], r["installment_months"], r["ref"]) for n, r in valid] == [
        (1, 30000, 0, "int"),
        (2, 30000, 3, "whole-float"),
    ]
    assert [(r["row"], r["ref"]) for r in invalid] == [(3, "half-won"), (4, "no-card")]
    assert "amount" in invalid[0]["error"]
    assert "card_id" in invalid[1]["error"]


def test_xlsx_mobile_typed_as_a_number_and_extra_cells() -> None:
    data = workbook(
        [None],  # blank rows above the header are skipped
        ["mobile", "name", "ref"],
        [1012345678, "홍길동", "a"],
        ["01022223333", "김영희", "b", "stray"],
    )
    f = read_file(data, "xlsx", ())
    assert f.rows[0] == {"mobile": "01012345678", "name": "홍길동", "ref": "a"}
    valid, invalid = sort_rows(f.rows, registrations.check_registration_row)
    assert [r["mobile"] for _, r in valid] == ["01012345678"]
    assert invalid[0]["row"] == 2
    assert "more fields than the header" in invalid[0]["error"]


def test_xlsx_formulas_are_read_as_values_never_as_text() -> None:
    data = workbook(CHARGE_HEADER, ["card_1", "=1000*2", "회비", 0, '=HYPERLINK("x")'])
    (row,) = read_file(data, "xlsx").rows
    # openpyxl stores no computed value: the cell is empty, never its formula text
    assert row["amount"] == ""
    assert row["ref"] == ""


@pytest.mark.parametrize(
    ("value", "column", "text"),
    [
        (30000.0, "amount", "30000"),
        (30000.5, "amount", "30000.5"),
        (None, "name", ""),
        (dt.datetime(2027, 1, 5), "ref", "2027-01-05"),
        (dt.datetime(2027, 1, 5, 9, 30), "ref", "2027-01-05 09:30:00"),
        (dt.date(2027, 1, 5), "ref", "2027-01-05"),
        (1012345678, "mobile", "01012345678"),
        (1012345678, "ref", "1012345678"),  # only the mobile column is mended
        (10123456789, "mobile", "10123456789"),  # 11 digits: not a lost 0
        (True, "ref", "TRUE"),
    ],
)
def test_cell_text(value: Any, column: str, text: str) -> None:
    assert cell_text(value, column) == text


def test_restore_mobile_only_for_ten_digit_10_numbers() -> None:
    assert restore_mobile("1099998888") == "01099998888"
    assert restore_mobile("2099998888") == "2099998888"
    assert restore_mobile("１０99998888") == "１０99998888"  # not ASCII digits


def test_xlsx_headers_must_name_the_columns() -> None:
    with pytest.raises(InvalidInput, match="header row with card_id"):
        read_file(workbook(["a", "b"], [1, 2]), "xlsx")
    with pytest.raises(InvalidInput, match="twice"):
        read_file(workbook([*CHARGE_HEADER, "ref"], ["card_1", 1, "x", 0, "a", "b"]), "xlsx")
    with pytest.raises(InvalidInput, match="no rows"):
        read_file(workbook(CHARGE_HEADER), "xlsx")


@pytest.mark.parametrize(
    "data", [b"PK\x03\x04garbage", b"not a zip", workbook()[:200], b"PK\x03\x04" + b"\0" * 100]
)
def test_a_broken_xlsx_is_refused(data: bytes) -> None:
    with pytest.raises(InvalidInput, match="xlsx"):
        read_file(data, "xlsx")


def test_xlsx_size_guards(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [["card_1", 1000, "x", 0, f"r{n}"] for n in range(6)]
    data = workbook(CHARGE_HEADER, *rows)
    assert len(read_file(data, "xlsx").rows) == 6
    monkeypatch.setattr(files, "MAX_ROWS", 5)
    with pytest.raises(InvalidInput, match="more than 5 rows"):
        read_file(data, "xlsx")
    monkeypatch.setattr(files, "MAX_ROWS", 100)
    monkeypatch.setattr(xlsx, "MAX_UNCOMPRESSED", 1024)  # a zip bomb, in small
    with pytest.raises(InvalidInput, match="unpacks to more than"):
        read_file(data, "xlsx")
    monkeypatch.setattr(xlsx, "MAX_UNCOMPRESSED", 100 * 1024 * 1024)
    monkeypatch.setattr(xlsx, "MAX_COLUMNS", 4)
    with pytest.raises(InvalidInput, match="more than 4 columns"):
        read_file(data, "xlsx")


def test_a_forged_dimension_does_not_pad_rows() -> None:
    src = zipfile.ZipFile(io.BytesIO(workbook(CHARGE_HEADER, ["card_1", 1, "x", 0, "a"])))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for info in src.infolist():
            body = src.read(info)
            if info.filename == "xl/worksheets/sheet1.xml":
                body, n = re.subn(
                    rb'<dimension ref="[^"]*"', b'<dimension ref="A1:XFD1048576"', body
                )
                assert n == 1
            z.writestr(info, body)
    assert read_file(out.getvalue(), "xlsx").rows[0]["ref"] == "a"


RESULTS = [
    {"row": 1, "ref": "=HYPERLINK(\"http://x\")", "card_id": "card_1", "amount": 1000,
     "result": "succeeded", "error": None},
    {"row": 2, "ref": "홍길동", "result": "invalid", "error": "@SUM(A1)"},
    {"row": 3, "ref": "-2+3", "result": "invalid", "error": "+cmd"},
]  # fmt: skip


def test_result_csv_escapes_formula_like_cells() -> None:
    got = list(csv.DictReader(io.StringIO(results_csv(RESULTS))))
    assert [r["ref"] for r in got] == ['\'=HYPERLINK("http://x")', "홍길동", "'-2+3"]
    assert [r["error"] for r in got] == ["", "'@SUM(A1)", "'+cmd"]


def test_result_file_in_the_uploaded_format() -> None:
    out = result_file(RESULTS, Source("xlsx"))
    assert out.extension == "xlsx"
    assert out.media_type == xlsx.MEDIA_TYPE
    sheet = load_workbook(io.BytesIO(out.body)).active
    values = list(sheet.values)
    assert values[0][:4] == ("row", "ref", "card_id", "amount")
    assert values[1][:4] == (1, '\'=HYPERLINK("http://x")', "card_1", 1000)
    assert all(c.data_type != "f" for row in sheet.iter_rows() for c in row)  # no formula
    cp = result_file(RESULTS, Source("csv", "cp949"))
    assert "euc-kr" in cp.media_type
    assert "홍길동" in cp.body.decode("cp949")
    with pytest.raises(UnicodeDecodeError):
        cp.body.decode("utf-8")
    assert result_file(RESULTS, Source("csv", "utf-8")).body.decode() == results_csv(RESULTS)
    assert result_file(RESULTS, Source("json")).extension == "csv"
    assert result_file(RESULTS, Source("csv", "cp949"), "xlsx").extension == "xlsx"


def test_the_xlsx_writer_writes_text_as_text_never_a_formula() -> None:
    data = xlsx.write_sheet(["ref", "mobile"], [["=1+2", "01012345678"], [3, None]], ["mobile"])
    sheet = load_workbook(io.BytesIO(data)).active
    assert [(c.value, c.data_type) for c in sheet[2]] == [("=1+2", "s"), ("01012345678", "s")]
    assert sheet["A3"].value == 3
    assert sheet.column_dimensions["B"].number_format == "@"  # Excel keeps the 0


@pytest.mark.parametrize("kind", ["charges", "registrations"])
def test_templates(kind: str) -> None:
    fields = charge_rows.FIELDS if kind == "charges" else registrations.FIELDS
    text = template(kind, "csv").body.decode("utf-8-sig")
    assert text.splitlines() == [",".join(fields)]
    sheet = load_workbook(io.BytesIO(template(kind, "xlsx").body)).active
    assert list(sheet.values) == [tuple(fields)]
    with pytest.raises(InvalidInput):
        template("refunds", "csv")
