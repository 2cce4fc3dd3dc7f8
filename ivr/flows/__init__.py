"""The calls (docs/product.md §4): possession check, registration and payment-consent flows,
written once against :class:`~ivr.telephony.call.Call`. The engine runs
:class:`~ivr.flows.router.CallFlows`."""
