"""Operating the engine: its metrics, its readiness, and reading them back.

    registry.py    every metric (names, labels, buckets) in a registry per runtime
    calls.py       CallMeter: one call in progress, its outcome, prompt turnarounds
    gateways.py    GatewayMeter: PG requests per account (latency, outcome, declines)
    vault.py       MeteredVault: vault operations (latency, outcome, declines)
    queries.py     the counting reads behind the queue and DID pool gauges
    sampler.py     what a scrape sets first: row gauges, breaker states, readiness
    readiness.py   the /ready checks and the rules for ready, degraded, not ready
    telemetry.py   the three together, as the runtime holds them
    scrape.py      scrape /metrics and parse it (tests, operators)

The HTTP side is ivr/api/probes.py; names, labels and rules are in docs/operating.md.
"""
