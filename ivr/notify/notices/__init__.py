"""Payer notices (issue #28, docs/notices.md): one channel-independent row per event —
kind + merchant + recipient mobile + template variables — recorded in the transaction
that makes the change (:mod:`.record`), then rendered per channel (:mod:`.texts`, SMS or
LMS by EUC-KR length) and queued by :mod:`.router`."""
