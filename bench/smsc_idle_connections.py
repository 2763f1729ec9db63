"""What idle connections cost the SMSC's other sessions: CPU per event on a healthy session beside N idle ones.

Not a test: it prints figures and asserts nothing about speed. N connections are opened and never bind (an
attacker's, or a fleet of half-open clients, each held until session_init_timeout); one more binds and sends
enquire_link after enquire_link. After each read the driver does what ``SmscServer.service()`` does -- run due
timers, flush dirty connections, ask ``next_deadline`` to re-arm the timer -- and reports the mean CPU time per
event, which should not grow with N (it did: 4.1 ms per event with 1,000 idle connections before the SMSC kept
each session's deadline, see docs/performance.md).

Usage (from the repository root)::

    PYTHONPATH=. python bench/smsc_idle_connections.py [--idle 0,1000,4000] [--events 3000]
"""

from __future__ import annotations

import argparse
import sys
import time

from carrier_sim.smpp.codec import encode
from carrier_sim.smpp.constants import CommandId
from carrier_sim.smpp.pdu import Pdu
from carrier_sim.smsc.accounts import Account
from carrier_sim.smsc.centre import Smsc, SmscConfig

__all__ = ["cpu_per_event"]

_T0 = 1_700_000_000.0


def cpu_per_event(idle: int, events: int) -> float:
    """Mean CPU seconds per enquire_link of the healthy session, beside ``idle`` connections that never bind."""
    smsc = Smsc(SmscConfig(accounts=(Account("good", "pw"),)))
    for n in range(idle):
        smsc.connect(f"idle-{n}", _T0)
    good = smsc.connect("good", _T0)
    good.receive_data(encode(Pdu.make(CommandId.bind_transceiver, 1, system_id="good", password="pw",
                                      interface_version=0x34)), _T0)
    good.data_to_send()
    links = [encode(Pdu.make(CommandId.enquire_link, 2 + n)) for n in range(events)]
    started = time.process_time()
    for n, link in enumerate(links):
        now = _T0 + 1 + n * 1e-4  # well inside session_init_timeout: the idle ones stay open
        good.receive_data(link, now)
        deadline = smsc.next_deadline
        if deadline is not None and deadline <= now:
            smsc.handle_timers(now)
        for conn in smsc.dirty_connections():
            conn.data_to_send()
        smsc.next_deadline  # noqa: B018 -- what the server asks to re-arm its timer
    return (time.process_time() - started) / events


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--idle", default="0,1000,4000", help="comma-separated idle connection counts")
    parser.add_argument("--events", type=int, default=3000, help="enquire_link per count (default 3000)")
    args = parser.parse_args(argv)
    for idle in (int(n) for n in args.idle.split(",")):
        print(f"{idle:6,d} idle connections: {cpu_per_event(idle, args.events) * 1e6:9.1f} us CPU per event")
    return 0


if __name__ == "__main__":
    sys.exit(main())
