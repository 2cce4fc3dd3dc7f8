"""The sandbox PG's PortOne V2 mount (``/v2``): the V2 paths the V2 connector uses,
answered from the same ledger and the same test-card table as the v1 paths, so a test
card declines the same way whichever API asks. ``/v2`` + a V2 path is the V2 API
(``gateway.base_url = http://127.0.0.1:8090/v2``)."""
