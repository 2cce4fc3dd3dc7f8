"""Fuzz: the bulk file parser (``ivr.bulk.files.parse_rows``) and the row checks
(``check_row``, ``check_registration_row``) that ``BulkSubmissions.submit`` runs on every
uploaded CSV/JSON file.

Properties:

* arbitrary bytes, text and JSON end in ``InvalidInput`` or in rows; each row then
  ends in a clean row or ``InvalidInput`` (never a raw ``ValueError``/``KeyError``/…);
* a well-formed CSV or JSON list yields exactly one row per data line/object, each
  classified valid xor invalid (with a message), with every cell kept under its
  column (nothing lost, nothing shifted); a duplicated column name is refused;
* a row built from good values is valid, and a valid row holds the values given.
"""

from __future__ import annotations

import csv
import io
import json
import string
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ivr.bulk.charge_rows import FIELDS, REQUIRED, check_row
from ivr.bulk.files import EXTRA_FIELDS, MAX_BYTES, parse_rows
from ivr.bulk.registrations import check_registration_row
from ivr.bulk.rows import safe_ref
from ivr.domain.terms import MAX_AMOUNT, MIN_AMOUNT
from ivr.domain.text import text_problem
from ivr.errors import InvalidInput

REG_FIELDS = ("customer_id", "mobile", "name", "external_ref", "product_name", "ref")
MONTHS = {0, *range(2, 37)}

FUZZ = settings(max_examples=300, deadline=None)


def _classify(
    rows: list[dict[str, Any]], kind: str = "charges"
) -> tuple[list[tuple[int, dict[str, Any]]], list[dict[str, Any]]]:
    """``BulkSubmissions.submit``'s loop (``sort_rows``): (row number, clean row) and
    invalid rows."""
    valid: list[tuple[int, dict[str, Any]]] = []
    invalid: list[dict[str, Any]] = []
    for n, raw in enumerate(rows, start=1):
        try:
            if kind == "charges":
                valid.append((n, check_row(raw)))
            else:
                valid.append((n, check_registration_row(raw)))
        except InvalidInput as exc:  # (submit catches any ArspayError; rows raise only this)
            invalid.append({"row": n, "ref": safe_ref(raw), "error": exc.message})
    assert len(valid) + len(invalid) == len(rows)
    assert sorted([n for n, _ in valid] + [r["row"] for r in invalid]) == list(
        range(1, len(rows) + 1)
    )
    return valid, invalid


def _assert_clean_charge(row: dict[str, Any]) -> None:
    assert set(row) == set(FIELDS)
    assert row["card_id"].startswith("card_")
    assert len(row["card_id"]) <= 40
    assert type(row["amount"]) is int
    assert MIN_AMOUNT <= row["amount"] <= MAX_AMOUNT
    assert 1 <= len(row["order_name"]) <= 100
    assert row["order_name"] == " ".join(row["order_name"].split())
    assert row["installment_months"] in MONTHS
    assert isinstance(row["ref"], str)
    assert len(row["ref"]) <= 100


def _parse(data: bytes, fmt: str, kind: str = "charges") -> list[dict[str, Any]] | None:
    """The rows, or ``None`` when the whole file is refused with InvalidInput."""
    try:
        rows = parse_rows(data, fmt, () if kind == "registrations" else REQUIRED)
    except InvalidInput:
        return None
    assert isinstance(rows, list)
    assert rows
    assert all(isinstance(r, dict) for r in rows)
    valid, _ = _classify(rows, kind)
    if kind == "charges":
        for _, row in valid:
            _assert_clean_charge(row)
    return rows


# ------------------------------------------------------------------ arbitrary input

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["1e3", "-0", " 12 ", "１２０００", "1,000", "card_x", "²", "9" * 5000])
)
json_values = st.recursive(
    json_scalars,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4)
    ),
    max_leaves=12,
)
HEADER = ",".join(REQUIRED).encode()


@FUZZ
@given(data=st.binary(max_size=512), fmt=st.sampled_from(["csv", "json", "xlsx", "xml", ""]))
@example(data=b"PK\x03\x04" + b"\x00" * 40, fmt="xlsx")  # a zip header, nothing behind it
@example(data=b"PK\x05\x06" + b"\x00" * 18, fmt="xlsx")  # an empty zip
@example(data=b"[" * 100_000, fmt="json")  # was RecursionError
@example(data=b"[" + b"1" * 5000 + b"]", fmt="json")  # was ValueError (int digit limit)
@example(data=b"\xff\xfe" + "card_id".encode("utf-16-le"), fmt="csv")
@example(data=b"\xef\xbb\xbf" + HEADER + b"\ncard_1,1000,x\x00y\n", fmt="csv")
@example(data=HEADER + b"\ncard_1,1000,a\rb\n", fmt="csv")  # a stray CR
@example(data=HEADER + b'\ncard_1,"1000\n', fmt="csv")  # an unclosed quote
@example(data=HEADER + b"\n" + b"x" * 200_000 + b",1,2\n", fmt="csv")  # above the field limit
@example(data=b" " * (MAX_BYTES + 1), fmt="csv")
@example(data=b"[" + b"{}," * 100_000 + b"{}]", fmt="json")  # above MAX_ROWS
def test_arbitrary_bytes_end_in_invalid_input_or_rows(data: bytes, fmt: str) -> None:
    _parse(data, fmt)


@FUZZ
@given(text=st.text(max_size=300), bom=st.booleans())
def test_arbitrary_text_after_a_valid_header(text: str, bom: bool) -> None:
    data = ("\ufeff" if bom else "") + "card_id,amount,order_name,installment_months,ref\n" + text
    _parse(data.encode("utf-8"), "csv")


@FUZZ
@given(value=json_values)
@example(
    value=[{"card_id": "card_1", "amount": 1000, "order_name": "x", "installment_months": "²"}]
)
@example(
    value=[
        {"card_id": "card_1", "amount": 1000, "order_name": "x", "installment_months": "9" * 5000}
    ]
)  # both were a raw ValueError from int()
@example(value=[{"card_id": "card_1", "amount": "１２０００", "order_name": "x"}])
def test_arbitrary_json_ends_in_invalid_input_or_rows(value: Any) -> None:
    _parse(json.dumps(value).encode(), "json")


@FUZZ
@given(
    rows=st.lists(
        st.dictionaries(st.sampled_from([*FIELDS, "extra", ""]), json_values, max_size=6),
        min_size=1,
        max_size=5,
    )
)
def test_json_rows_of_arbitrary_values_each_end_valid_or_invalid(
    rows: list[dict[str, Any]],
) -> None:
    parsed = _parse(json.dumps(rows).encode(), "json")
    # a JSON list of objects is kept as it is, one row per object (dumps: NaN != NaN)
    assert json.dumps(parsed) == json.dumps(rows)


@pytest.mark.parametrize(
    "text",
    [
        '[{"card_id": "card_1", "amount": 100, "amount": 990000, "order_name": "x"}]',
        '[{"card_id": "card_1", "amount": 100, "order_name": "x", "ref": {"a": 1, "a": 2}}]',
    ],
)
def test_json_object_naming_a_key_twice_is_refused(text: str) -> None:
    # json.loads would keep the last value and silently drop the other
    with pytest.raises(InvalidInput, match="twice"):
        parse_rows(text.encode(), "json")


# ------------------------------------------------------------------ well-formed CSV

ODD = "\",\r\n \t;'\ufeff\x00\u2028"
AMOUNT_TEXTS = [
    "1000", "1,000", " 12 ", "1e3", "-0", "0", "99", "100", "１２０００", "1_000",
    "100000000000", "100000000001", "", "NaN", "٣٠٠", "+500", "1000.0",
]  # fmt: skip
cells = st.one_of(
    st.sampled_from(AMOUNT_TEXTS),
    st.sampled_from(["card_", "card_abc", " card_x ", "CARD_1", "card_" + "9" * 40]),
    st.sampled_from(["", "0", "2", "36", "37", "1", "²", "02", " 3 ", "9" * 5000]),
    st.text(max_size=12),
    st.text(alphabet=ODD, max_size=6),
)
header_names = st.sampled_from([*FIELDS, "extra", "", "Card_ID", " amount", "amount "]) | st.text(
    max_size=6
)
good_rows = st.fixed_dictionaries(
    {
        "card_id": st.text(string.ascii_letters + string.digits + "_", min_size=1, max_size=30).map(
            lambda s: "card_" + s
        ),
        "amount": st.tuples(
            st.integers(MIN_AMOUNT, MAX_AMOUNT), st.sampled_from(["{}", "{:,}", " {} "])
        ).map(lambda t: t[1].format(t[0])),
        "order_name": st.text(min_size=1, max_size=60).filter(
            # no card number, no control or invisible character in it
            lambda s: s.split() != [] and text_problem(s, "order_name") is None
        ),
        "installment_months": st.sampled_from(["", *map(str, sorted(MONTHS))]),
        "ref": st.text(max_size=120).filter(lambda s: text_problem(s, "ref") is None),
    }
)
Row = tuple[bool, list[str]]  # (built from good values, cells)


@st.composite
def csv_files(draw: st.DrawFn) -> tuple[list[str], list[Row]]:
    names = [*REQUIRED, *draw(st.lists(header_names, max_size=3))]
    if draw(st.integers(0, 9)) > 0:  # mostly distinct names; a name given twice is refused
        names = list(dict.fromkeys(names))
    header = draw(st.permutations(names))
    rows: list[Row] = []
    for _ in range(draw(st.integers(0, 6) | st.integers(1, 6))):
        if draw(st.booleans()):
            good = draw(good_rows)
            rows.append((True, [good.get(name, "") for name in header]))
        else:
            rows.append((False, draw(st.lists(cells, min_size=1, max_size=len(header) + 2))))
    return header, rows


def _encode(header: list[str], rows: list[Row], terminator: str, bom: bool) -> bytes:
    buf = io.StringIO()
    # csv.writer quotes only the terminator's characters: with "\n", a cell holding "\r"
    # would go out bare and end the line there (as a Mac CR does) — quote every cell
    quoting = csv.QUOTE_ALL if terminator == "\n" else csv.QUOTE_MINIMAL
    writer = csv.writer(buf, lineterminator=terminator, quoting=quoting)
    writer.writerow(header)
    for _, row_cells in rows:
        writer.writerow(row_cells)
    return (("\ufeff" if bom else "") + buf.getvalue()).encode("utf-8")


def _expected_raw(header: list[str], row_cells: list[str]) -> dict[str, Any]:
    raw: dict[str, Any] = {name: None for name in header}
    raw.update(zip(header, row_cells, strict=False))
    if len(row_cells) > len(header):
        raw[EXTRA_FIELDS] = row_cells[len(header) :]
    return raw


@settings(max_examples=250, deadline=None)
@given(file=csv_files(), terminator=st.sampled_from(["\r\n", "\n"]), bom=st.booleans())
@example(  # a column named twice: DictReader kept the last cell and dropped the first
    file=(["card_id", "amount", "order_name", "amount"], [(False, ["card_1", "100", "x", "9999"])]),
    terminator="\n",
    bom=False,
)
def test_well_formed_csv_keeps_every_row_and_cell(
    file: tuple[list[str], list[Row]], terminator: str, bom: bool
) -> None:
    header, rows = file
    data = _encode(header, rows, terminator, bom)
    if len(set(header)) != len(header):
        with pytest.raises(InvalidInput, match="twice"):
            parse_rows(data, "csv", REQUIRED)
        return
    parsed = _parse(data, "csv")
    if not rows:
        assert parsed is None  # "bulk file has no rows"
        return
    assert parsed is not None
    assert len(parsed) == len(rows)  # one row per data line, none lost or merged
    for raw, (_, row_cells) in zip(parsed, rows, strict=True):
        assert raw == _expected_raw(header, row_cells)
    valid, invalid = _classify(parsed)
    valid_at = dict(valid)
    for n, (good, row_cells) in enumerate(rows, start=1):
        if good and set(header) <= set(FIELDS):
            assert n in valid_at, invalid
        if n in valid_at:
            clean, cell = valid_at[n], dict(zip(header, row_cells, strict=False))
            assert clean["card_id"] == cell["card_id"].strip()
            assert clean["amount"] == int(cell["amount"].replace(",", "").strip())
            assert clean["order_name"] == " ".join(cell["order_name"].split())
    for r in invalid:
        assert r["error"]
        assert r["row"] not in valid_at


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.dictionaries(
            st.sampled_from([*REG_FIELDS, "extra"]),
            json_values | st.sampled_from(["010-1234-5678", "cus_1", "+82 10 1234 5678"]),
            max_size=5,
        )
        | st.tuples(
            st.dictionaries(st.sampled_from(REG_FIELDS), st.text(max_size=20), max_size=4),
            st.text(alphabet=string.digits + " +-.e", max_size=6) | st.integers() | st.none(),
        ).map(lambda t: {**t[0], "lease_minutes": t[1]}),
        min_size=1,
        max_size=5,
    ),
    fmt=st.sampled_from(["json", "csv"]),
)
def test_registration_rows_end_valid_or_invalid(rows: list[dict[str, Any]], fmt: str) -> None:
    """(digit-like lease_minutes text has its own test below.)"""
    if fmt == "json":
        data = json.dumps(rows).encode()
    else:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow([*REG_FIELDS, "lease_minutes"])
        for r in rows:
            writer.writerow([str(r.get(k, "")) for k in (*REG_FIELDS, "lease_minutes")])
        data = buf.getvalue().encode()
    parsed = _parse(data, fmt, "registrations")
    assert parsed is not None
    assert len(parsed) == len(rows)


@pytest.mark.parametrize("minutes", ["²", "9" * 5000])
def test_registration_lease_minutes_digit_like_text(minutes: str) -> None:
    with pytest.raises(InvalidInput, match="lease_minutes"):
        check_registration_row({"mobile": "010-1234-5678", "lease_minutes": minutes})
