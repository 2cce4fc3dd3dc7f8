"""Signing matches the reference ``standardwebhooks`` library both ways; the keyring
signs with two secrets during a rotation; the backoff spans at least 24 h."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime, timedelta

import pytest
import standardwebhooks

from ivr.webhooks import backoff, keyring
from ivr.webhooks.signing import InvalidSignature, headers_for, new_secret, sign, verify

BODY = '{"type":"payment.succeeded","timestamp":"2026-01-01T00:00:00+00:00","data":{"amount":53000,"product":"임플란트"}}'.encode()  # noqa: E501


def test_given_our_signature_when_the_reference_verifies_then_it_accepts() -> None:
    secret = new_secret()
    now = int(time.time())
    headers = headers_for([secret], "evt_01TEST", now, BODY)
    payload = standardwebhooks.Webhook(secret).verify(BODY, headers)
    assert payload["data"]["amount"] == 53000


@pytest.mark.parametrize("tamper", ["body", "timestamp", "id"])
def test_given_a_tampered_message_when_verified_then_both_reject(tamper: str) -> None:
    secret = new_secret()
    now = int(time.time())
    headers = headers_for([secret], "evt_01TEST", now, BODY)
    body = BODY
    if tamper == "body":
        body = BODY.replace(b"53000", b"53001")
    elif tamper == "timestamp":
        headers["webhook-timestamp"] = str(now - 1)
    else:
        headers["webhook-id"] = "evt_01OTHER"
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(secret).verify(body, headers)
    with pytest.raises(InvalidSignature):
        verify(secret, headers, body)


def test_given_a_reference_signature_when_we_verify_then_it_matches() -> None:
    secret = new_secret()
    now = datetime.now(UTC).replace(microsecond=0)
    theirs = standardwebhooks.Webhook(secret).sign("evt_01TEST", now, BODY.decode())
    assert theirs == sign(secret, "evt_01TEST", int(now.timestamp()), BODY)
    headers = {
        "webhook-id": "evt_01TEST",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": theirs,
    }
    verify(secret, headers, BODY)


def test_given_an_old_timestamp_when_verified_then_rejected() -> None:
    secret = new_secret()
    old = int(time.time()) - 600
    headers = headers_for([secret], "evt_01TEST", old, BODY)
    with pytest.raises(InvalidSignature):
        verify(secret, headers, BODY)
    verify(secret, headers, BODY, now=old + 10)


def test_given_a_rotation_when_signing_then_both_secrets_verify_for_24h() -> None:
    old, new = new_secret(), new_secret()
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    packed = keyring.rotated(old, new, t0)
    assert len(packed) <= 100  # the column is String(100)
    during = keyring.active_secrets(packed, t0 + timedelta(hours=23))
    assert during == [new, old]
    now = int(time.time())
    headers = headers_for(during, "evt_01TEST", now, BODY)
    assert len(headers["webhook-signature"].split()) == 2
    standardwebhooks.Webhook(old).verify(BODY, headers)
    standardwebhooks.Webhook(new).verify(BODY, headers)
    assert keyring.active_secrets(packed, t0 + timedelta(hours=25)) == [new]
    # a second rotation drops the oldest
    newer = new_secret()
    assert keyring.active_secrets(keyring.rotated(packed, newer, t0), t0) == [newer, new]


def test_given_the_default_settings_then_retries_span_at_least_24h() -> None:
    offsets = backoff.schedule(26)
    assert offsets[:4] == [
        timedelta(0), timedelta(seconds=5), timedelta(seconds=305), timedelta(seconds=2105),
    ]  # fmt: skip
    assert offsets[-1] == timedelta(hours=26) >= timedelta(hours=24)
    assert all(b > a for a, b in itertools.pairwise(offsets))
    # next_delay agrees with the schedule and gives up after the last attempt
    attempts = len(offsets)
    assert backoff.next_delay(attempts, 26) is None
    assert backoff.next_delay(attempts - 1, 26) is not None
    # jitter stays within 10 %
    for n in range(1, attempts):
        wait = backoff.next_delay(n, 26)
        assert wait is not None
        nominal = offsets[n] - offsets[n - 1]
        assert nominal * 0.9 <= wait <= nominal * 1.1
