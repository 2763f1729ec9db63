"""The ``identity-core`` command: ``identity-core serve --config identity.toml``."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from identity_core.api import make_app
from identity_core.certificates import CertificateIssuer
from identity_core.config import CarrierConfig, ConfigError, IdentityConfig, load_config
from identity_core.gateway import CarrierGateway, CarrierLink, MoMessage
from identity_core.http_errors import app_runner
from identity_core.keys import load_or_create_keys
from identity_core.limits import VelocityLimiter, VelocityLimits
from identity_core.proofs import ProofSigner
from identity_core.service import IdentityService
from identity_core.sim_swap import SimSwapApi, SimSwapClient, api_url
from identity_core.store import SqliteStorage, Storage, StorageError

__all__ = ["all_set", "main", "serve"]

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``identity-core``."""
    parser = argparse.ArgumentParser(prog="identity-core", description="Phone-number identity over SMS.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve_cmd = sub.add_parser("serve", help="run the identity service")
    serve_cmd.add_argument("--config", type=Path, required=True)
    serve_cmd.add_argument("--log-level", default="WARNING", type=str.upper,
                           choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
                           help="logging threshold (default WARNING)")
    serve_cmd.add_argument("--parent-pid", type=int, default=None, metavar="PID",
                           help="stop as on SIGTERM once process PID (the one starting this) is not its parent")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        config = load_config(args.config)
    except ConfigError as err:
        print(f"identity-core: {err}", file=sys.stderr)
        return 2
    return _run(serve(config, parent=args.parent_pid))


def _run(service: Coroutine[Any, Any, int]) -> int:
    # uvloop where it is installed (not on Windows). smpp34 and the SQLite writer hand every result to the loop
    # with call_soon_threadsafe: asyncio writes a byte to its self-pipe per call, uvloop coalesces the wake-ups
    # into one eventfd signal. That halved the CPU of smpp34's threads per activation (docs/performance.md).
    try:
        import uvloop
    except ImportError:
        return asyncio.run(service)
    return uvloop.run(service)


def _link(carrier: CarrierConfig) -> CarrierLink:
    # Every CarrierConfig field named like a CarrierLink field is passed on (window, mo_max_wait, workers, ...);
    # parse_config has already folded [overload] mo_max_wait into each carrier.
    fields = {f.name for f in dataclasses.fields(CarrierLink)}
    values = {k: v for k, v in dataclasses.asdict(carrier).items() if k in fields}
    return CarrierLink(**values)


def _sim_swap_apis(config: IdentityConfig) -> dict[str, SimSwapApi]:
    return {
        carrier.name: SimSwapApi(
            api_url(carrier.sim_swap_api),
            max_age=carrier.sim_swap_max_age,
            token=carrier.sim_swap_token,
            timeout=carrier.sim_swap_timeout,
        )
        for carrier in config.carriers
        if carrier.sim_swap_api is not None
    }


def _service(
    config: IdentityConfig,
    store: Storage,
    signer: ProofSigner,
    issuer: CertificateIssuer,
    limits: VelocityLimits | None = None,
) -> IdentityService:
    """The service as configured, without carrier gateways: serve() adds those, and closes its SIM Swap client.

    ``limits``: the configuration's [limits], already converted (serve() does that before opening the store).
    """
    if limits is None:
        limits = VelocityLimits.from_mapping(dataclasses.asdict(config.limits))
    return IdentityService(
        store,
        signer,
        issuer,
        VelocityLimiter(limits),
        sim_swap=SimSwapClient(_sim_swap_apis(config)),
        help_text=config.messages.help,
        max_auth_in_flight=config.overload.max_auth_in_flight,
        auth_first=config.overload.auth_first,
    )


#: Seconds between two checks that the parent process is still there (``--parent-pid``).
PARENT_CHECK_INTERVAL = 1.0


async def _watch_parent(parent: int, stop: asyncio.Event) -> None:
    # The parent's death shows as a new parent (the orphan is re-parented at once, to init or a subreaper),
    # which, unlike probing the old pid, cannot be fooled by a parent that is a zombie or a pid reused. The pid
    # comes from the parent itself rather than from getppid() here: a parent killed while this process was
    # still importing would otherwise be mistaken for the adopter and never missed.
    while not stop.is_set():
        if os.getppid() != parent:
            log.warning("parent process %d is gone; stopping", parent)
            stop.set()
            return
        await asyncio.sleep(PARENT_CHECK_INTERVAL)


#: Seconds between two expiry sweeps of the store. Answers do not wait for a sweep (a binding past its
#: ``expires_at`` reads as expired at once); the sweep writes those expiries down, keeping the store's states,
#: the per-state counts and the live-expiry index true. A short interval keeps each sweep's transaction small.
EXPIRY_SWEEP_INTERVAL = 10.0


async def _sweep_expired(service: IdentityService, interval: float) -> None:
    # The first sweep at once: a store reopened after downtime holds bindings that ran out meanwhile.
    while True:
        try:
            expired = await service.expire_due()
        except StorageError as err:
            # A failing or closing store: nothing is lost by trying again next time, and reads do not depend on it.
            log.warning("expiry sweep failed: %s", err)
        else:
            if expired:
                log.info("expiry sweep: %d binding(s) expired", expired)
        await asyncio.sleep(interval)


async def serve(config: IdentityConfig, ready: asyncio.Event | None = None, parent: int | None = None) -> int:
    """Run until SIGINT/SIGTERM (or, with ``parent``, until that parent process is gone); prints ``ready`` once
    the API listens and every carrier is bound."""
    try:
        # Everything that can refuse the configuration, before the store is opened: a mistake then leaves no
        # store open and no half-started service behind, only the message. (parse_config checks ranges too;
        # this is the last line for a configuration built in code.)
        links = [(carrier.name, _link(carrier)) for carrier in config.carriers]
        limits = VelocityLimits.from_mapping(dataclasses.asdict(config.limits))
        signer, issuer = load_or_create_keys(
            config.keys_path,
            proof_validity=config.proof_validity,
            certificate_validity=config.certificate_validity,
            issuer=config.issuer,
        )
        store = SqliteStorage(config.store_path)
    except (OSError, ValueError) as err:
        print(f"identity-core: {err}", file=sys.stderr)
        return 2
    try:
        service = _service(config, store, signer, issuer, limits)
    except ValueError as err:
        print(f"identity-core: {err}", file=sys.stderr)
        await store.close()
        return 2
    sim_swap = service.sim_swap
    for name, link in links:

        async def on_mo(mo: MoMessage) -> None:
            await service.handle_mo(mo)

        async def on_receipt(message_id: str, state: str, error: str | None, final: bool, name: str = name) -> None:
            await service.handle_receipt(name, message_id, state, error, final)

        service.gateways[name] = CarrierGateway(link, on_mo, on_receipt, on_shed=service.mo_shed,
                                                admit=service.mo_admission)
    if not config.api.tokens:
        # Allowed (a deployment may only need the phone-facing routes), but an empty list is more often a missing
        # line than a choice, and its only symptom is a 401 for every server-to-server caller.
        log.warning("[api] tokens is empty: the server-to-server routes (lookup, delete, risk-check, events) "
                    "will answer 401 to every caller")
    runner = app_runner(make_app(service, config.api.tokens), access_log=None)  # malformed HTTP: one line
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        # The background tasks belong to this group, and end (cancelled) before anything below is shut down,
        # the store above all: a sweep never runs on a closing store.
        async with asyncio.TaskGroup() as background:
            tasks = [background.create_task(_sweep_expired(service, EXPIRY_SWEEP_INTERVAL))]
            if parent is not None:
                # A supervisor killed outright (SIGKILL, a lost Ray actor) cannot stop its identity core; this does.
                tasks.append(background.create_task(_watch_parent(parent, stop)))
            try:
                await _serve_until_stopped(service, runner, config, stop, ready)
            except OSError as err:
                print(f"identity-core: {err}", file=sys.stderr)
                return 2
            finally:
                for task in tasks:
                    task.cancel()
    finally:
        service.release_held_mos()
        for gateway in service.gateways.values():
            await gateway.stop()
        await runner.cleanup()
        await sim_swap.close()
        await store.close()
    return 0


async def all_set(events: Sequence[asyncio.Event]) -> None:
    """Return once every event is set at the same moment.

    Each carrier's ``bound`` event: one that was set and cleared again (bound, then dropped) while another was
    still waiting does not count, or ``ready`` would be printed with a carrier down."""
    while True:
        await asyncio.gather(*(event.wait() for event in events))
        if all(event.is_set() for event in events):
            return


async def _serve_until_stopped(
    service: IdentityService, runner: web.AppRunner, config: IdentityConfig, stop: asyncio.Event,
    ready: asyncio.Event | None,
) -> None:
    for gateway in service.gateways.values():
        await gateway.start()
    await runner.setup()
    site = web.TCPSite(runner, config.api.host, config.api.port)
    await site.start()

    async def stopped() -> None:
        await stop.wait()

    waiting = asyncio.create_task(all_set([g.bound for g in service.gateways.values()]))
    stopping = asyncio.create_task(stopped())
    await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not stop.is_set():
        host, port = runner.addresses[0][:2]
        print(f"ready api=http://{host}:{port}", flush=True)
        if ready is not None:
            ready.set()
        await stop.wait()
    waiting.cancel()
    stopping.cancel()


if __name__ == "__main__":
    raise SystemExit(main())
