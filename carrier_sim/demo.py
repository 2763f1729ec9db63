"""``carrier-sim demo``: an emulated SMSC, an ESME pushing traffic through it, and the SMSC's verdicts.

Until the scenario runner lands this is the best end-to-end run the project has: real sockets, the SMSC's
store, delivery and receipts in the Kannel-like dialect, MO injected over the control API, concatenated
GSM 7-bit and UCS-2 text, and the conformance oracle's verdicts on the ESME.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
from aiohttp import web
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from carrier_sim.net.control import control_app
from carrier_sim.net.esme import Esme
from carrier_sim.net.http_errors import app_runner
from carrier_sim.net.smsc_server import SmscServer
from carrier_sim.smpp.coding import choose_coding
from carrier_sim.smpp.constants import CommandId, CommandStatus
from carrier_sim.smpp.pdu import Pdu
from carrier_sim.smpp.receipt import is_receipt, parse_receipt
from carrier_sim.smpp.segmentation import SegmentationMode, split_text
from carrier_sim.smsc.accounts import Account
from carrier_sim.smsc.centre import DelayDistribution, Smsc, SmscConfig
from carrier_sim.smsc.subscribers import Condition, SubscriberRegistry

__all__ = ["run_demo"]

_TEXTS = (
    "Your code is 123456",
    "Привет! Ваш код 654321 — не сообщайте его никому.",
    "A long GSM message that needs concatenation because it is longer than one hundred and sixty characters, "
    "which is the limit of a single SMS in the GSM 7-bit default alphabet {with escapes}.",
    "Emoji survive surrogate pairs 👍🏽 and are never split in the middle of one " + "🎉" * 38,
)


async def run_demo(messages: int = 200) -> int:
    """Run the demo; 0 when every message got its receipt and every verdict is pass or inconc."""
    console = Console()
    subscribers = SubscriberRegistry()
    subscribers.set("447700900013", Condition.ABSENT)
    subscribers.set("447700900017", Condition.BARRED)
    smsc = Smsc(
        SmscConfig(name="demo-smsc", accounts=(Account("demo", "secret"),),
                   dlr_delay=DelayDistribution(0.0, 0.05), seed=7),
        subscribers,
    )
    server = SmscServer(smsc)
    host, port = await server.listen("127.0.0.1", 0)
    runner = app_runner(control_app(server), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    control_port = runner.addresses[0][1]
    console.print(f"[bold]SMSC[/] listening on {host}:{port}, control on 127.0.0.1:{control_port}")

    receipts: dict[str, str] = {}
    mo_texts: list[str] = []

    def on_message(pdu: Pdu) -> None:
        esm_class = pdu["esm_class"]
        assert isinstance(esm_class, int)
        short = pdu["short_message"]
        assert isinstance(short, bytes)
        if is_receipt(esm_class):
            receipt = parse_receipt(short.decode("ascii"))
            receipts[receipt.message_id] = receipt.stat.stat
        else:
            mo_texts.append(short.hex())

    esme = await Esme.connect(host, port, on_message=on_message)
    await esme.bind("demo", "secret", CommandId.bind_transceiver)
    started = time.perf_counter()
    ids: list[str] = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("submitting", total=messages)
        futures = []
        for i in range(messages):
            text = _TEXTS[i % len(_TEXTS)]
            coding = choose_coding(text)
            segments = split_text(text, coding, SegmentationMode.UDH_CONCAT_8, reference=i & 0xFF)
            for segment in segments:
                futures.append(esme.submit(Pdu.make(
                    CommandId.submit_sm, 0, source_addr_ton=5, source_addr="CarrierSim", dest_addr_ton=1,
                    dest_addr_npi=1, destination_addr=f"4477009{i % 100:05d}", registered_delivery=1,
                    esm_class=0x40 if segment.esm_class_udhi else 0, data_coding=segment.data_coding,
                    short_message=segment.short_message)))
            progress.advance(task)
        for future in futures:
            response = await future
            if response.command_status == CommandStatus.ESME_ROK:
                ids.append(str(response["message_id"]))
        async with aiohttp.ClientSession() as http:
            for n in range(3):
                async with http.post(f"http://127.0.0.1:{control_port}/mo",
                                     json={"from": f"44770090010{n}", "to": "12345", "text": f"STOP {n}"}) as r:
                    r.raise_for_status()
        try:
            async with asyncio.timeout(10):
                while len(receipts) < len(ids) or len(mo_texts) < 3:
                    await asyncio.sleep(0.01)
        except TimeoutError:
            pass
    elapsed = time.perf_counter() - started
    await esme.unbind()
    await server.shutdown()
    await runner.cleanup()

    table = Table(title=f"{len(ids)} PDUs submitted in {elapsed:.2f} s, {len(receipts)} receipts, "
                        f"{len(mo_texts)} MO received")
    table.add_column("counter")
    table.add_column("value", justify="right")
    for key, value in smsc.stats.to_json().items():
        table.add_row(key, str(value))
    console.print(table)
    outcomes: dict[str, int] = {}
    for stat in receipts.values():
        outcomes[stat] = outcomes.get(stat, 0) + 1
    console.print("receipts by state:", outcomes)
    verdicts = Table(title="conformance verdicts on the ESME")
    verdicts.add_column("check")
    verdicts.add_column("verdict")
    verdicts.add_column("reason")
    failed = False
    for session in smsc.verdicts():
        checks = session["checks"]
        assert isinstance(checks, list)
        for check in checks:
            colour = {"pass": "green", "fail": "red"}.get(str(check["verdict"]), "yellow")
            failed |= check["verdict"] == "fail"
            verdicts.add_row(str(check["check"]), f"[{colour}]{check['verdict']}[/]", str(check["reason"]))
    console.print(verdicts)
    ok = not failed and len(receipts) == len(ids) and len(mo_texts) == 3
    console.print("[bold green]demo passed[/]" if ok else "[bold red]demo failed[/]")
    return 0 if ok else 1
