"""KakaoTalk 알림톡 for payer notices (issue #28, docs/notices.md "Alimtalk"), with the
SMS/LMS as its fallback (대체 발송).

- :mod:`.contract` — what the dispatcher asks of a provider and the answers it gets
  back, as dataclasses: accepted / refused / retry later / outcome unknown.
- :mod:`.nhn` — NHN Cloud KakaoTalk Bizmessage (알림톡 API v2.3) over HTTP: send,
  one message's result, and the lookup by our message id.
- :mod:`.params` — a notice's template parameters (from its variables; a card is its
  issuer and last 4 digits, never more).
- :mod:`.dispatch` — the ``alimtalk_messages`` outbox: the ALIMTALK state machine
  (ivr/domain/states.py), retries with backoff, result polling, and the fallback SMS
  queued once, under the row's lock.
- :mod:`.fake` — a local HTTP server speaking the documented NHN shapes, scriptable
  (refuse, fail, time out after accepting) for the tests and for development.
- :mod:`.errors` — the package's error tree.
"""
