"""The SIPp driver's script builder and scenario text (no sipp process runs)."""

from __future__ import annotations

import re

import pytest

from ivr.testing.sipp import CallResult, CallScript, SendDtmf, SippCall, rfc4733_playback_ms


def test_script_is_immutable_and_validates() -> None:
    base = CallScript().wait(100)
    longer = base.dtmf("123#", "info")
    assert len(base.steps) == 1
    assert len(longer.steps) == 2
    with pytest.raises(ValueError, match="0-9"):
        base.dtmf("12a4", "info")
    with pytest.raises(ValueError, match="at least one"):
        base.dtmf("", "rfc4733")
    with pytest.raises(ValueError, match=">= 0"):
        base.wait(-1)
    with pytest.raises(ValueError, match="method"):
        base.dtmf("1", "inband")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tone_ms"):
        base.dtmf("1", "rfc4733", tone_ms=20)
    with pytest.raises(ValueError, match="rfc4733 only"):
        base.dtmf("1", "info", tone_ms=100)
    with pytest.raises(ValueError, match="already used"):
        base.wait_for("a", 1000).wait_for("a", 1000)
    with pytest.raises(ValueError, match="signal name"):
        base.wait_for("bad name", 1000)
    with pytest.raises(ValueError, match="nothing can follow"):
        base.hangup().wait(10)
    with pytest.raises(ValueError, match=">= 1"):
        base.expect_hangup(0)


def test_call_validates_fields() -> None:
    with pytest.raises(ValueError, match="DID"):
        SippCall(did="05<0")
    with pytest.raises(ValueError, match="caller_id"):
        SippCall(did="0505", caller_id="a b")
    with pytest.raises(ValueError, match="set by the driver"):
        SippCall(did="0505", headers={"Call-ID": "x"})
    with pytest.raises(ValueError, match="bad value"):
        SippCall(did="0505", headers={"X-A": "a\r\nVia: evil"})
    with pytest.raises(ValueError, match="bad value"):
        SippCall(did="0505", headers={"X-A": "[call_id]"})
    with pytest.raises(ValueError, match="script steps"):
        SippCall(did="0505", expect_status=404, script=CallScript().wait(1))


def test_digits_never_show_in_reprs() -> None:
    card = "4111111111111111"
    script = CallScript().dtmf(card, "rfc4733").dtmf(card + "#", "info")
    c = SippCall(did="0505", script=script)
    result = CallResult(call=c, ok=False, exit_code=1, errors="", duration_s=1.0)
    for text in (repr(script), repr(c), repr(result), str(result), repr(script.steps[0])):
        assert card not in text
    assert "<16 digits>" in repr(script.steps[0])


def test_scenario_offers_telephone_event_and_sends_each_digit() -> None:
    script = CallScript().dtmf("11220", "rfc4733").dtmf("1*#", "info", gap_ms=50)
    xml = SippCall(
        did="0505550000", script=script, headers={"X-Arspay-Endpoint": "x"}
    ).scenario_xml()
    assert "m=audio [media_port] RTP/AVP 0 8 96" in xml
    assert "a=rtpmap:96 telephone-event/8000" in xml
    assert 'play_dtmf="11220,200"' in xml
    step = script.steps[0]
    assert isinstance(step, SendDtmf)
    assert f'<pause milliseconds="{step.duration_ms}"/>' in xml
    assert [m for m in re.findall(r"Signal=(.)", xml)] == ["1", "*", "#"]
    assert xml.count('<pause milliseconds="50"/>') == 2  # between INFOs only
    assert "X-Arspay-Endpoint: x" in xml
    assert xml.rstrip().endswith("</scenario>")
    assert "BYE [next_url]" in xml  # a hangup() was added


def test_anonymous_caller() -> None:
    xml = SippCall(did="0505", caller_id="anonymous").scenario_xml()
    assert '"Anonymous" <sip:anonymous@anonymous.invalid>' in xml
    assert "Privacy: id" in xml


def test_a_call_with_an_account_answers_the_digest_challenge() -> None:
    from ivr.testing.sip_account import SipAccount, register_scenario

    account = SipAccount("softphone", "s3cret-Passw0rd")
    assert "s3cret" not in repr(account)
    call = SippCall(did="0505", account=account)
    xml = call.scenario_xml()
    assert "From: <sip:softphone@[local_ip]:[local_port]>" in xml  # the account's user
    invites = [m for m in xml.split("<send>") if "INVITE sip:0505" in m]
    assert len(invites) == 2
    assert "[authentication" not in invites[0]
    assert "[authentication username=softphone password=s3cret-Passw0rd]" in invites[1]
    order = [xml.index(x) for x in ('response="401" auth="true"', "ACK sip:0505", invites[1])]
    assert order == sorted(order)
    result = CallResult(call=call, ok=False, exit_code=1, errors="", duration_s=1.0)
    assert "s3cret" not in repr(result)
    reg = register_scenario(account)
    assert reg.count("REGISTER sip:") == 2
    assert reg.index('response="401" auth="true"') < reg.index("[authentication")
    with pytest.raises(ValueError, match="answered"):
        SippCall(did="0505", account=account, expect_status=404)
    with pytest.raises(ValueError, match="password"):
        SipAccount("softphone", "a b")


def test_rfc4733_playback_time() -> None:
    assert rfc4733_playback_ms(0) == 0
    assert rfc4733_playback_ms(1) == 400 + 400 + 200 + 3
    assert rfc4733_playback_ms(5, 100) == 400 + 1000 + 100 + 3
