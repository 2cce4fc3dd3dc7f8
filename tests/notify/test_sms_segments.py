"""Segmentation: GSM-7 when possible, else UCS-2; 70/67 units; UDH; surrogates."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ivr.notify.sms import SmsTooLong, encode, part_count, segments
from ivr.notify.sms.segments import GSM7, UCS2, UDHI
from ivr.notify.templates import payment_sms, receipt_sms, registration_sms
from tests.notify.loopback_smsc import decode

KO = "가나다라마바사아자차"  # 10 Hangul syllables


def join(parts: list[bytes], coding: int) -> str:
    if len(parts) == 1:
        return decode(parts[0], coding)
    return decode(b"".join(p[6:] for p in parts), coding)


@pytest.mark.parametrize(
    ("body", "coding", "esm", "sizes"),
    [
        ("Hello", GSM7, 0, [5]),
        ("a" * 160, GSM7, 0, [160]),
        ("a" * 161, GSM7, UDHI, [6 + 153, 6 + 8]),
        ("{}" * 40, GSM7, 0, [160]),  # extension characters count two septets
        ("€" * 81, GSM7, UDHI, [6 + 152, 6 + 10]),  # an escape pair is never split
        (KO * 7, UCS2, 0, [140]),  # exactly 70 Korean characters: one message
        (KO * 7 + "가", UCS2, UDHI, [6 + 134, 6 + 8]),  # 71 -> 67 + 4
        ("가" * 134, UCS2, UDHI, [6 + 134, 6 + 134]),
        ("가" * 135, UCS2, UDHI, [6 + 134, 6 + 134, 6 + 2]),
        ("a" * 66 + "😀" + "b" * 10, UCS2, UDHI, [6 + 132, 6 + 24]),  # pair moves whole
        ("😀" * 35, UCS2, 0, [140]),  # 35 emoji = 70 UTF-16 units
    ],
)
def test_given_a_body_when_encoded_then_coding_parts_and_sizes_match(
    body: str, coding: int, esm: int, sizes: list[int]
) -> None:
    enc = encode(body, concat_ref=0x2A)
    assert (enc.data_coding, enc.esm_class) == (coding, esm)
    assert [len(p) for p in enc.parts] == sizes
    assert join(enc.parts, coding) == body


def test_multi_part_udh_carries_ref_total_and_1_based_sequence() -> None:
    parts = segments("가" * 200, concat_ref=0x1FF)  # ref is 8-bit
    assert len(parts) == 3
    for seq, part in enumerate(parts, start=1):
        assert part[:6] == bytes([0x05, 0x00, 0x03, 0xFF, 3, seq])


def test_no_part_ends_inside_a_surrogate_pair() -> None:
    body = "가" * 66 + "😀" * 40
    for part in segments(body):
        payload = part[6:]
        assert len(payload) <= 134
        last = int.from_bytes(payload[-2:], "big")
        assert not 0xD800 <= last <= 0xDBFF
        payload.decode("utf-16-be")  # every part decodes on its own


def test_more_than_255_parts_is_refused() -> None:
    with pytest.raises(SmsTooLong):
        segments("가" * (67 * 255 + 1))


def test_product_section_9_texts_are_ucs2() -> None:
    at = datetime(2026, 11, 28, 5, 30, tzinfo=UTC)
    reg = registration_sms("행복치과", "05051234567", at)
    pay = payment_sms(
        "행복한미소치과의원", "임플란트 치료 및 정기 검진 패키지", 1530000, "05051234567", at
    )
    rcp = receipt_sms("행복치과", 53000, "신한카드", "1234", "30012345")
    assert "☎ 0505-123-4567" in reg
    for text in (reg, pay, rcp):
        assert encode(text).data_coding == UCS2
        assert join(encode(text).parts, UCS2) == text
    assert part_count(pay) == 2
    assert part_count(rcp) == 1
