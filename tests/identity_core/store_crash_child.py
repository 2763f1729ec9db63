"""The process that test_store.py kills: a burst of registrations through SqliteStorage, one line per acknowledgement.

Usage: python store_crash_child.py DB FIRST COUNT

For phone FIRST..FIRST+COUNT-1 it records a pending binding and redeems its proof, with many phones in flight at
once, and prints the phone's number on stdout -- flushed -- as soon as ``authenticate`` has returned, that is, as
soon as the activation is acknowledged. The test reads those lines, kills this process with SIGKILL at a random
moment, and checks that every number it read is active in the database. "DONE" follows the last phone.
"""

from __future__ import annotations

import asyncio
import sys

from identity_core.store import SqliteStorage

CONCURRENCY = 64
NOW = 1_700_000_000.0


def phone(i: int) -> str:
    return f"+1555{i:07d}"


def token(i: int) -> str:
    return f"{i:064x}"


def proof(i: int) -> bytes:
    return i.to_bytes(16, "big")


async def burst(path: str, first: int, count: int) -> None:
    async with SqliteStorage(path) as store:
        queue = iter(range(first, first + count))

        async def caller() -> None:
            for i in queue:  # the callers share one iterator: each phone is taken once
                await store.record_pending(
                    e164=phone(i),
                    push_token=token(i),
                    request_id=i + 1,
                    carrier="crash",
                    proof_id=proof(i),
                    expires_at=NOW + 300,
                    now=NOW,
                )
                activation = await store.authenticate(
                    proof_id=proof(i),
                    proof_expires_at=NOW + 300,
                    e164=phone(i),
                    push_token=token(i),
                    now=NOW + 1,
                    cert_expires_at=NOW + 86_400,
                )
                if activation is None:
                    raise SystemExit(f"fresh proof of {phone(i)} refused as a replay")
                sys.stdout.write(phone(i) + "\n")
                sys.stdout.flush()

        async with asyncio.TaskGroup() as group:
            for _ in range(CONCURRENCY):
                group.create_task(caller())
    sys.stdout.write("DONE\n")
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(burst(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
