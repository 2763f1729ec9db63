"""The carrier gateways' own counters, in ``/metrics``: a Prometheus collector that reads them at scrape time.

A gateway counts what happens on its SMPP link in plain integers (:meth:`identity_core.gateway.CarrierGateway.
metrics`) -- rejected and incomplete MO, reconnects, dead sessions, throttled submits, receipts nobody was
waiting for. Mirroring each increment into a prometheus_client Counter would put a labelled lookup on the hot
path of every PDU; reading the integers when Prometheus asks costs nothing between scrapes and cannot drift.
The collector holds the service's gateway table itself, so gateways added after it was registered (``serve``
adds them after the service is built) are scraped too.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Final, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["COUNTERS", "GAUGES", "GatewayCollector", "MetricsSource"]

#: Counters of a gateway's ``metrics()``, each exposed as ``identity_gateway_<name>_total{carrier}``.
COUNTERS: Final[Mapping[str, str]] = {
    "binds": "Successful binds of the carrier's SMPP sessions",
    "connect_failures": "Connects or binds to the SMSC that failed",
    "reconnects": "SMPP sessions lost and bound again",
    "liveness_failures": "SMPP sessions declared dead by the liveness check (enquire_link_interval)",
    "deliver_sm_received": "deliver_sm PDUs received (MO segments and receipts)",
    "deliver_sm_unreadable": ("deliver_sm the gateway failed to read, or receipts without a readable message id "
                              "(dropped, logged; the session goes on)"),
    "mo_segments": "MO segments received",
    "mo_received": "Whole MO messages handed to the service",
    "mo_rejected": "MO refused as unreadable (malformed segment, undecodable text)",
    "mo_incomplete": "Concatenated MO whose parts never all arrived (or whose reference was reused before they did)",
    "mo_duplicate_segments": "MO segments received twice with the same octets",
    "queue_full": ("Times the work queue filled and reading paused: once per overload, from the first reader held "
                   "back until every reader pulls again"),
    "mo_shed": "MO shed unanswered after waiting longer than mo_max_wait",
    "mo_dropped_at_stop": "MO acknowledged to the SMSC but left unhandled when stop()'s grace ran out",
    "handler_errors": "MO or receipts whose handler failed",
    "mt_sent": "MT accepted by the SMSC",
    "mt_throttled": "submit_sm answered ESME_RTHROTTLED (sent again after a pause)",
    "mt_queue_full": "submit_sm answered ESME_RMSGQFUL (sent again after a pause)",
    "mt_retried": "submit_sm sent again (on another session) after the connection dropped or no response came",
    "mt_outcome_unknown": ("submit_sm answered on a live session with ESME_RSYSERR or a response the gateway could "
                           "not read: the SMSC may have taken it; not sent again"),
    "mt_failed": "MT given up",
    "receipts": "Delivery receipts received",
    "receipts_matched": "Delivery receipts for an MT the gateway was waiting for",
    "receipts_unmatched": "Delivery receipts for no MT the gateway was waiting for",
}
#: Current sizes of a gateway's queues and tables, each exposed as ``identity_gateway_<name>{carrier}``.
GAUGES: Final[Mapping[str, str]] = {
    "queue": "MO and receipts waiting for a handler",
    "in_flight": "submit_sm awaiting their response",
    "awaiting_receipt": "MT whose final receipt is awaited",
    "reassembly_pending": "Concatenated MO with parts still missing",
}


class MetricsSource(Protocol):
    """What the collector reads: a gateway's counters and sizes by name (unknown names are ignored)."""

    def metrics(self) -> dict[str, int]: ...


class GatewayCollector(Collector):
    """Yields every gateway counter and gauge, labelled by carrier, from ``gateways`` as it is at scrape time."""

    def __init__(self, gateways: Mapping[str, MetricsSource]) -> None:
        self._gateways = gateways

    def collect(self) -> Iterator[Metric]:
        # One read per gateway per scrape: the figures of one gateway are from the same instant.
        readings = {carrier: gateway.metrics() for carrier, gateway in list(self._gateways.items())}
        families: tuple[tuple[type[CounterMetricFamily | GaugeMetricFamily], Mapping[str, str]], ...] = (
            (CounterMetricFamily, COUNTERS), (GaugeMetricFamily, GAUGES))
        for family, table in families:
            for name, documentation in table.items():
                metric = family(f"identity_gateway_{name}", documentation, labels=["carrier"])
                for carrier, values in readings.items():
                    if name in values:
                        metric.add_metric([carrier], values[name])
                yield metric

    def describe(self) -> Iterator[Metric]:
        # Names only, without reading the gateways: registering this collector must not depend on their state.
        for name, documentation in COUNTERS.items():
            yield CounterMetricFamily(f"identity_gateway_{name}", documentation, labels=["carrier"])
        for name, documentation in GAUGES.items():
            yield GaugeMetricFamily(f"identity_gateway_{name}", documentation, labels=["carrier"])
