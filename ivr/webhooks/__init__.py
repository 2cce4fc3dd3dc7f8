"""Merchant webhooks (docs/product.md §9): Standard Webhooks signing, an outbox of
events written in the caller's transaction, and a dispatcher that delivers them
at-least-once with exponential backoff.

    signing    sign / verify / new_secret (``webhook-id``, ``-timestamp``, ``-signature``)
    keyring    the current secret plus, for 24 h after a rotation, the previous one
    events     EVENT_TYPES and ``emit_in`` (event row + one delivery per endpoint)
    backoff    when a failed delivery is tried again, and when it gives up
    health     when an endpoint whose deliveries all fail is disabled
    service    WebhookService: endpoints, events, deliveries, redelivery
    delivery   WebhookDispatcher: claim due deliveries, POST them, record results

Errors:

    ArspayError
    ├── InvalidInput       bad URL, unknown event type, card-like digits in a payload
    ├── NotFound           endpoint / event does not exist or is another merchant's
    ├── Conflict           e.g. redelivering to a disabled endpoint
    └── InvalidSignature   a webhook signature did not verify (signing.verify)
"""
