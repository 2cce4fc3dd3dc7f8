"""The roles of bulk jobs, built together for the engine, the API, the console and the
CLI: each caller takes the one it needs. Composition only: the work is in the roles.

============================  ===========================================================
``submissions``               a file checked and stored as a job (:mod:`ivr.bulk.submit`)
``charges``                   the worker that charges ``charges`` rows
``registrations``             the worker that makes ``registrations`` rows' requests
``jobs``                      progress, rows pending (:mod:`ivr.bulk.progress`)
``results``                   the per-row results, the result file (:mod:`ivr.bulk.results`)
============================  ===========================================================
"""

from __future__ import annotations

from dataclasses import dataclass

from ivr.bulk.charges import ChargeWorker
from ivr.bulk.progress import BulkJobs
from ivr.bulk.registration_worker import RegistrationWorker
from ivr.bulk.results import BulkResults
from ivr.bulk.submit import BulkSubmissions
from ivr.clock import Clock
from ivr.jobs.queue import JobQueue
from ivr.merchants.service import CustomerService
from ivr.payments.charger import Charger
from ivr.payments.service import PaymentService
from ivr.requests.service import CallRequestService
from ivr.store.db import Database


@dataclass(frozen=True)
class Bulk:
    submissions: BulkSubmissions
    charges: ChargeWorker
    registrations: RegistrationWorker
    jobs: BulkJobs
    results: BulkResults


def build_bulk(db: Database, clock: Clock, queue: JobQueue, payments: PaymentService,
               charger: Charger, customers: CustomerService, requests: CallRequestService, *,
               rate_per_s: float = 50.0, concurrency: int = 16, lease_s: float = 120.0,
               ) -> Bulk:  # fmt: skip
    """``concurrency``: charge rows in flight at once, and registration rows claimed at
    once; ``lease_s``: how long a claimed row is a worker's before another takes it over."""
    charges = ChargeWorker(db, clock, queue, payments, charger, rate_per_s=rate_per_s,
                           concurrency=concurrency, lease_s=lease_s)  # fmt: skip
    registrations = RegistrationWorker(db, clock, queue, customers, requests, batch=concurrency,
                                       lease_s=lease_s)  # fmt: skip
    return Bulk(BulkSubmissions(db, clock, queue), charges, registrations, BulkJobs(db),
                BulkResults(db))  # fmt: skip
