"""Throughput of the identity core's store: registrations and activations per second through SqliteStorage.

Not a test: it prints figures and asserts nothing about speed (design.md: "tests never assert on wall-clock
speed"). The target it is measured against is the issue's: a million phones activating in about 60 s on two
cores, i.e. ~17k registrations/s, each one pending record (REG-REQ) plus one proof redemption and activation
(authenticate).

Every repetition starts from an empty database file and runs four phases, each with ``--concurrency`` callers
(asyncio tasks awaiting one operation after another, as request handlers would):

* ``record_pending``: one pending binding per phone (the REG-REQ side);
* ``authenticate``: one proof redemption + activation per phone, no number active yet (the headline:
  activations/s);
* ``re-register``: every phone registers again from a new device, ``record_pending`` then ``authenticate`` in
  the same caller, so each activation also supersedes the number's active binding;
* ``get``: point reads of random numbers, on the reader connection (the caller's thread), with no write load.

Numbers, push tokens and proof ids are scattered as real ones are (proof ids are MACs): sequential keys would
append to the right edge of every index and flatter the store several-fold. Two summary lines follow the table:
first registrations/s (one ``record_pending`` and one ``authenticate`` per phone, from the first two phases'
rates) and re-registrations/s (the third phase, two operations per phone).

Per phase it prints operations per second, the commits and the batch sizes observed (operations per transaction:
the mean, the size the median operation travelled in, the largest), the process's CPU time over wall time (2.0
would be both cores busy) and its CPU time per operation -- the figure to trust on a shared, noisy machine, where
the rate also measures the neighbours. Repetitions are summarised as the median and min..max.

Usage (from the repository root)::

    PYTHONPATH=. python bench/identity_store.py [--phones 200000] [--concurrency 1000] [--repeat 3]
        [--synchronous FULL|NORMAL] [--dir /path/on/the/disk/to/measure]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import platform
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from identity_core.store import SqliteStorage, WriterStats

__all__ = ["main"]

PROOF_TTL = 300.0
CERT_TTL = 30 * 86400.0


@dataclass(frozen=True, slots=True)
class PhaseResult:
    """One phase of one repetition."""

    name: str
    operations: int
    seconds: float
    cpu_seconds: float
    commits: int
    batch_sizes: Mapping[int, int]

    @property
    def rate(self) -> float:
        return self.operations / self.seconds

    @property
    def mean_batch(self) -> float:
        return sum(size * n for size, n in self.batch_sizes.items()) / max(1, self.commits)

    @property
    def median_op_batch(self) -> int:
        """The size of the batch that the median operation was committed in."""
        total = sum(size * n for size, n in self.batch_sizes.items())
        seen = 0
        for size in sorted(self.batch_sizes):
            seen += size * self.batch_sizes[size]
            if seen * 2 >= total:
                return size
        return 0


# Real numbers and proof ids arrive in no particular order, and proof ids are MACs: random keys, which land on a
# different index page every time. Sequential keys would flatter the store several-fold, so scatter them.
def _phone(i: int) -> str:
    # Multiplying by a number coprime with 10**10 permutes 0..10**10-1: scattered, yet never a collision.
    return f"+1{i * 2_654_435_761 % 10**10:010d}"


def _token(i: int, generation: int) -> str:
    return hashlib.blake2b(f"token {generation} {i}".encode(), digest_size=32).hexdigest()


def _proof(i: int, generation: int) -> bytes:
    return hashlib.blake2b(f"proof {generation} {i}".encode(), digest_size=16).digest()


def _diff(after: WriterStats, before: WriterStats) -> tuple[int, dict[int, int]]:
    sizes = {size: n - before.batch_sizes.get(size, 0) for size, n in after.batch_sizes.items()}
    return after.commits - before.commits, {size: n for size, n in sizes.items() if n}


async def _phase(
    store: SqliteStorage,
    name: str,
    phones: int,
    concurrency: int,
    one: Callable[[int], Awaitable[object]],
    ops_per_phone: int = 1,
) -> PhaseResult:
    async def caller(first: int) -> None:
        for i in range(first, phones, concurrency):
            await one(i)

    before = store.stats()
    cpu, wall = time.process_time(), time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for first in range(min(concurrency, phones)):
            group.create_task(caller(first))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    commits, sizes = _diff(store.stats(), before)
    return PhaseResult(name, phones * ops_per_phone, wall, cpu, commits, sizes)


async def _repetition(path: Path, args: argparse.Namespace) -> list[PhaseResult]:
    n, c, now = args.phones, args.concurrency, 1_700_000_000.0
    results: list[PhaseResult] = []
    async with SqliteStorage(path, synchronous=args.synchronous) as store:

        async def record(i: int, generation: int = 0) -> None:
            await store.record_pending(
                e164=_phone(i),
                push_token=_token(i, generation),
                request_id=i + 1,
                carrier="bench",
                proof_id=_proof(i, generation),
                expires_at=now + PROOF_TTL,
                now=now,
            )

        async def authenticate(i: int, generation: int = 0) -> None:
            activation = await store.authenticate(
                proof_id=_proof(i, generation),
                proof_expires_at=now + PROOF_TTL,
                e164=_phone(i),
                push_token=_token(i, generation),
                now=now + 1,
                cert_expires_at=now + CERT_TTL,
            )
            if activation is None or (generation > 0) != (activation.superseded is not None):
                raise AssertionError(f"unexpected activation of {_phone(i)}: {activation}")

        async def reregister(i: int) -> None:
            await record(i, 1)
            await authenticate(i, 1)

        rng = random.Random(7)

        async def read(_: int) -> None:
            if await store.get(_phone(rng.randrange(n))) is None:
                raise AssertionError("a registered number has no binding")

        results.append(await _phase(store, "record_pending", n, c, record))
        results.append(await _phase(store, "authenticate", n, c, authenticate))
        results.append(await _phase(store, "re-register", n, c, reregister, ops_per_phone=2))
        results.append(await _phase(store, "get", n, c, read))
        counts = await store.counts()
    if counts["active"] != n or counts["revoked"] != n:
        raise AssertionError(f"counts after the run: {counts}")
    return results


def _summary(values: list[float]) -> str:
    return f"{statistics.median(values):>10,.0f}  ({min(values):,.0f}..{max(values):,.0f})"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phones", type=int, default=200_000)
    parser.add_argument("--concurrency", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--synchronous", choices=("FULL", "NORMAL"), default="FULL")
    parser.add_argument("--dir", type=Path, default=None, help="where the database goes (default: the temp dir)")
    args = parser.parse_args(argv)

    print(
        f"SqliteStorage, {args.phones:,} phones, {args.concurrency} concurrent callers, synchronous={args.synchronous}"
        f"; Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs"
    )
    runs: list[list[PhaseResult]] = []
    for repetition in range(args.repeat):
        with tempfile.TemporaryDirectory(dir=args.dir) as directory:
            phases = asyncio.run(_repetition(Path(directory) / "identity.db", args))
        runs.append(phases)
        line = ", ".join(f"{p.name} {p.rate:,.0f}/s" for p in phases)
        print(f"  run {repetition + 1}: {line}", flush=True)

    print(
        f"\n{'phase':<16}{'ops/s median (min..max)':>34}{'ops/commit':>12}{'median op in':>14}"
        f"{'largest':>9}{'cpu/wall':>10}{'cpu µs/op':>11}"
    )
    for index, name in enumerate(p.name for p in runs[0]):
        phase = [run[index] for run in runs]
        writes = name != "get"
        print(
            f"{name:<16}{_summary([p.rate for p in phase]):>34}"
            f"{statistics.median(p.mean_batch for p in phase) if writes else 0:>12.0f}"
            f"{statistics.median(p.median_op_batch for p in phase) if writes else 0:>14.0f}"
            f"{max(max(p.batch_sizes, default=0) for p in phase):>9}"
            f"{statistics.median(p.cpu_seconds / p.seconds for p in phase):>10.2f}"
            f"{statistics.median(p.cpu_seconds / p.operations * 1e6 for p in phase):>11.1f}"
        )
    first = [1 / (1 / run[0].rate + 1 / run[1].rate) for run in runs]
    again = [run[2].rate / 2 for run in runs]  # a re-registration is two operations
    print(f"\nfirst registrations (record_pending, then authenticate): {_summary(first)} /s")
    print(f"re-registrations (record_pending + authenticate, superseding): {_summary(again)} /s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
