"""Parsing DID ranges and lists."""

from __future__ import annotations

import pytest

from ivr.dids.numbers import parse_dids
from ivr.errors import InvalidInput


def test_range_of_a_thousand() -> None:
    nums = parse_dids(["0505-000-0000..0505-000-0999"])
    assert len(nums) == 1000
    assert nums[0] == "05050000000"
    assert nums[-1] == "05050000999"


def test_lists_and_repeats() -> None:
    nums = parse_dids(["0505-000-0001, 0505-000-0002", "05050000001", "070-1234-5678"])
    assert nums == ["05050000001", "05050000002", "07012345678"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "no DID given"),
        ("0505-000-0009..0505-000-0001", "end comes before the start"),
        ("0505-000-0000..0505-0000-0001", "same length"),
        ("010-1234-5678", "DID '010-1234-5678'"),
        ("hello", "DID 'hello'"),
        ("0505-000-0000..0505-999-9999", "at most"),
    ],
)
def test_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_dids([spec])
