"""Kannel (bearerbox + smsbox) as a real third-party ESME, bound to whatever SMSC a test points it at.

Theory of operation
-------------------
:class:`KannelBox` writes one ``kannel.conf`` into a scratch directory and runs Kannel's two daemons from it:

* ``bearerbox`` holds the SMPP client (``group = smsc``, ``smsc = smpp``, one transceiver bind to the SMSC
  described by :class:`SmscEndpoint`), the delivery-report store (``dlr-storage = internal``) and the admin
  HTTP interface, whose ``status.xml`` tells when the bind is up;
* ``smsbox`` holds the HTTP side: ``/cgi-bin/sendsms`` (``group = sendsms-user``) turns an HTTP GET into a
  submit_sm, and it is smsbox that fetches a message's ``dlr-url`` when a receipt comes back and the
  ``get-url`` of the ``sms-service`` when an MO arrives.

Both URLs point at a :class:`Catcher`, a tiny HTTP server (``http.server`` in a thread) that records every hit
with its query parameters, so a test can wait for "the delivered receipt of that message" or "that MO".

Everything listens on 127.0.0.1, on ports the kernel reports free when the box is built; logs, access logs
and the daemons' console output go to the scratch directory. Any failure (a daemon exiting, the bind not
coming up, sendsms refusing) raises :class:`KannelError` carrying the tails of every log, because Kannel
explains itself only there (it refuses some configurations at start, and a bind rejected by the SMSC is only
logged).

The SMSC side is pluggable: Kannel needs only :class:`SmscEndpoint` (host, port, system_id, password), so the
same harness drives Kannel against a stand-in SMSC in a test or against ``carrier-sim smsc``.

Message ids (``msg-id-type``)
----------------------------
Kannel stores a delivery-report request under the message_id of submit_sm_resp and looks the receipt up by the
id it finds in the deliver_sm: the ``receipted_message_id`` TLV when present (SMPP 3.4), else the ``id:`` of the
receipt text. With ``msg-id-type`` unset (the default here, ``None``) both ids are compared as opaque strings,
byte for byte, which is what the SMPP spec means and right for an SMSC that writes the same string in both
places. When an SMSC writes the same number in different bases or paddings, ``msg-id-type`` makes Kannel read
both as numbers first: bit 0x01 says submit_sm_resp ids are hexadecimal, bit 0x02 says receipt ids are
hexadecimal (an id holding a non-digit is read as hex either way). :func:`msg_id_type_for` computes it from
the two bases; note that the "receipt" base is the TLV's when the SMSC sends ``receipted_message_id``.

What Kannel 1.4.5 reports (checked by ``test_kannel_harness.py``; later tests can rely on it)
---------------------------------------------------------------------------------------
* It binds with bind_transceiver and asks every submit_sm for a receipt on success or failure
  (registered_delivery 0x11 with ``dlr-mask`` 31: final receipt plus intermediate notifications).
* A dlr-url is called once with type 8 (:data:`DLR_SMSC_SUCCESS`, reply ``ACK/``) on submit_sm_resp, then
  once per matching receipt: 1 delivered, 2 failed, 4 buffered (``stat:`` or the message_state TLV decide).
  A receipt it cannot match is only logged: "got DLR but could not find message".
* An MO address with TON 1 (international) reaches the get-url with a leading ``+``. smsbox's ``global-sender``
  would replace the MO's recipient (%P) by itself, so this config sets none.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Final, Self

__all__ = [
    "DLR_BUFFERED",
    "DLR_ESCAPES",
    "DLR_FAIL",
    "DLR_PATH",
    "DLR_SMSC_FAIL",
    "DLR_SMSC_SUCCESS",
    "DLR_SUCCESS",
    "LOCALHOST",
    "MO_ESCAPES",
    "MO_PATH",
    "SMSC_ID",
    "Catcher",
    "Hit",
    "KannelBox",
    "KannelError",
    "SendSmsResult",
    "SmscEndpoint",
    "free_port",
    "msg_id_type_for",
]

LOCALHOST: Final = "127.0.0.1"

#: Kannel's delivery-report types, the ``%d`` of a dlr-url and the bits of ``dlr-mask``.
DLR_SUCCESS: Final = 1  # delivered to the phone
DLR_FAIL: Final = 2  # not delivered to the phone
DLR_BUFFERED: Final = 4  # queued on the SMSC (intermediate)
DLR_SMSC_SUCCESS: Final = 8  # accepted by the SMSC (submit_sm_resp ESME_ROK)
DLR_SMSC_FAIL: Final = 16  # rejected by the SMSC

#: The smsc-id Kannel routes by and reports back in ``%i``.
SMSC_ID: Final = "carrier"

#: Paths on the catcher: where receipts and MOs land.
DLR_PATH: Final = "/dlr"
MO_PATH: Final = "/mo"

#: Escape codes Kannel substitutes in a dlr-url (Kannel user guide, "Parameters (Escape Codes)").
DLR_ESCAPES: Final[Mapping[str, str]] = {
    "type": "%d",  # delivery-report type, one of the DLR_* values
    "reply": "%A",  # the SMSC's receipt text ("ACK/" for the submit_sm_resp report, type 8)
    "smsc": "%i",  # smsc-id of the connection that got the receipt
    # A report travels back from the phone, so Kannel's sender (%p) is the message's destination and its
    # receiver (%P) the message's sender; named here after the message the report is about.
    "to": "%p",
    "from": "%P",
    "smsc_msg_id": "%F",  # the SMSC's message_id (foreign id), as Kannel stored it
    "meta": "%D",  # meta-data: the receipt's TLVs, e.g. ?smpp?network_error_code=...
    "time": "%t",
}

#: Escape codes for the sms-service get-url that records MOs.
MO_ESCAPES: Final[Mapping[str, str]] = {
    "from": "%p",
    "to": "%P",
    "text": "%a",  # all words, spaces squeezed
    "binary": "%b",  # the message as received
    "coding": "%c",
    "charset": "%C",
    "smsc": "%i",
    "udh": "%u",
    "meta": "%D",
    "time": "%t",
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        port: int = sock.getsockname()[1]
        return port


def msg_id_type_for(*, submit_id_hex: bool, receipt_id_hex: bool) -> int:
    """Kannel's ``msg-id-type`` for an SMSC writing hex (or decimal) ids in submit_sm_resp and in receipts.

    The receipt id is the ``receipted_message_id`` TLV when the SMSC sends one, else the text's ``id:``.
    """
    return (0x01 if submit_id_hex else 0) | (0x02 if receipt_id_hex else 0)


class KannelError(AssertionError):
    """Kannel did not do what the harness waited for; the message carries the log tails that say why.

    An ``AssertionError`` so that pytest shows it as a test failure, with its message in full.
    """


@dataclass(frozen=True)
class SmscEndpoint:
    """Where Kannel binds, and as whom: all Kannel needs to know about the SMSC under test."""

    host: str
    port: int
    system_id: str
    password: str
    system_type: str = ""


# ------------------------------------------------------------------------------------------------- catcher


@dataclass(frozen=True)
class Hit:
    """One HTTP request Kannel made to the catcher."""

    method: str
    path: str
    #: Query parameters, first value of each (Kannel never repeats one).
    params: Mapping[str, str]
    raw_query: str
    headers: Mapping[str, str]
    body: bytes
    received_at: float


class _CatcherHandler(BaseHTTPRequestHandler):
    server: _CatcherServer
    protocol_version = "HTTP/1.0"

    def _record(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        # Kannel percent-encodes the bytes it has; keep undecodable ones visible rather than fail.
        params = {
            key: values[0]
            for key, values in urllib.parse.parse_qs(
                url.query, keep_blank_values=True, encoding="utf-8", errors="replace"
            ).items()
        }
        hit = Hit(
            method=self.command,
            path=url.path,
            params=params,
            raw_query=url.query,
            headers=dict(self.headers.items()),
            body=body,
            received_at=time.monotonic(),
        )
        self.server.catcher._add(hit)
        # An empty text/plain answer: an sms-service would otherwise send the body back to the phone as a reply.
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = _record  # noqa: N815 - the name http.server dispatches to
    do_POST = _record  # noqa: N815

    def log_message(self, format: str, *args: object) -> None:
        """Silence the per-request stderr line; hits are recorded, not printed."""


class _CatcherServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, catcher: Catcher) -> None:
        self.catcher = catcher
        super().__init__((LOCALHOST, 0), _CatcherHandler)


class Catcher:
    """An HTTP server on 127.0.0.1 recording Kannel's dlr-url and get-url calls, for tests to wait on.

    Use as a context manager (or :meth:`start`/:meth:`close`). Thread-safe: hits arrive on server threads.
    """

    def __init__(self) -> None:
        self._hits: list[Hit] = []
        self._changed = threading.Condition()
        self._server: _CatcherServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        """Bind and serve in a daemon thread."""
        if self._server is None:
            self._server = _CatcherServer(self)
            self._thread = threading.Thread(target=self._server.serve_forever, name="kannel-catcher", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server = None
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def started(self) -> bool:
        """Whether the catcher is serving (so its port, and its URLs, are known)."""
        return self._server is not None

    @property
    def port(self) -> int:
        """The port the catcher listens on."""
        if self._server is None:
            raise RuntimeError("catcher not started")
        port: int = self._server.server_address[1]
        return port

    def url(self, path: str, escapes: Mapping[str, str] | None = None, **fixed: str) -> str:
        """``http://127.0.0.1:PORT/path?...``: ``escapes`` maps parameter names to Kannel escape codes (left
        raw for Kannel to substitute), ``fixed`` adds literal parameters (percent-encoded here), e.g. a tag
        telling one message's receipts from another's."""
        query = [f"{name}={code}" for name, code in (escapes or {}).items()]
        query += [urllib.parse.urlencode({name: value}) for name, value in fixed.items()]
        return f"http://{LOCALHOST}:{self.port}{path}" + ("?" + "&".join(query) if query else "")

    def dlr_url(self, **fixed: str) -> str:
        """A dlr-url recording every receipt field Kannel can substitute (see :data:`DLR_ESCAPES`)."""
        return self.url(DLR_PATH, DLR_ESCAPES, **fixed)

    def mo_url(self) -> str:
        """A get-url recording every MO field Kannel can substitute (see :data:`MO_ESCAPES`)."""
        return self.url(MO_PATH, MO_ESCAPES)

    def _add(self, hit: Hit) -> None:
        with self._changed:
            self._hits.append(hit)
            self._changed.notify_all()

    def hits(self, path: str | None = None) -> list[Hit]:
        """Hits so far, oldest first, optionally only those on ``path``."""
        with self._changed:
            return [hit for hit in self._hits if path is None or hit.path == path]

    def wait_for(
        self,
        path: str,
        predicate: Callable[[Hit], bool] = lambda hit: True,
        timeout: float = 10.0,
        describe: str = "",
    ) -> Hit:
        """The first hit on ``path`` satisfying ``predicate``, waiting at most ``timeout`` seconds.

        Raises :class:`KannelError` listing what did arrive when nothing matches in time.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for hit in self._hits:
                    if hit.path == path and predicate(hit):
                        return hit
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = "\n".join(f"  {h.method} {h.path}?{h.raw_query}" for h in self._hits) or "  (none)"
                    what = describe or f"a matching request on {path}"
                    raise KannelError(f"no {what} within {timeout:.1f}s; the catcher saw:\n{seen}")
                self._changed.wait(remaining)

    async def await_for(
        self,
        path: str,
        predicate: Callable[[Hit], bool] = lambda hit: True,
        timeout: float = 10.0,
        describe: str = "",
    ) -> Hit:
        """:meth:`wait_for` without blocking the event loop (it runs in a worker thread)."""
        return await asyncio.to_thread(self.wait_for, path, predicate, timeout, describe)


# ----------------------------------------------------------------------------------------------- the boxes


@dataclass(frozen=True)
class SendSmsResult:
    """smsbox's answer to /cgi-bin/sendsms, e.g. ``202`` and ``"0: Accepted for delivery"``."""

    status: int
    body: str

    @property
    def accepted(self) -> bool:
        """Kannel took the message (it answers 202, or 200 in older versions, with a body starting ``0:``)."""
        return self.status in (200, 202) and self.body.startswith("0:")


@dataclass
class _Ports:
    admin: int = field(default_factory=free_port)
    smsbox: int = field(default_factory=free_port)
    sendsms: int = field(default_factory=free_port)


def _conf_value(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _group(name: str, settings: Mapping[str, str | int | bool | None]) -> str:
    lines = [f"group = {name}"]
    lines += [f"{key} = {_conf_value(value)}" for key, value in settings.items() if value is not None]
    return "\n".join(lines) + "\n"


def _tail(path: Path, lines: int, *, debug: bool) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no such file)"
    kept = [line for line in text.splitlines() if debug or " DEBUG: " not in line]
    return "\n".join(kept[-lines:]) or "(empty)"


class KannelBox:
    """bearerbox + smsbox bound to ``smsc`` as an SMPP transceiver, driven over HTTP.

    ``with KannelBox(endpoint, tmp_path) as kannel:`` starts both daemons and returns once the SMPP bind is
    online and sendsms answers (:meth:`start`); leaving the block stops them (:meth:`stop`). ``async with``
    does the same in a worker thread, so an SMSC on the same event loop keeps running meanwhile.

    Knobs: ``msg_id_type`` (see the module docstring; ``None`` leaves it unset: ids compared as strings),
    ``interface_version`` (34 or 33), ``enquire_link_interval`` (seconds), ``smsc_settings``/``core_settings``/
    ``smsbox_settings`` (extra or overriding keys for those groups, e.g. ``{"max-pending-submits": 1}``).
    ``catcher`` lets several boxes or a test share one; by default the box runs its own.
    """

    def __init__(
        self,
        smsc: SmscEndpoint,
        workdir: Path,
        *,
        catcher: Catcher | None = None,
        msg_id_type: int | None = None,
        interface_version: int = 34,
        enquire_link_interval: int = 30,
        default_sender: str = "12345",
        log_level: int = 0,
        startup_timeout: float = 20.0,
        stop_timeout: float = 5.0,
        smsc_settings: Mapping[str, str | int | bool | None] | None = None,
        core_settings: Mapping[str, str | int | bool | None] | None = None,
        smsbox_settings: Mapping[str, str | int | bool | None] | None = None,
        bearerbox: str | None = None,
        smsbox: str | None = None,
    ) -> None:
        if msg_id_type is not None and not 0 <= msg_id_type <= 3:
            raise ValueError(f"msg-id-type must be 0..3 or None, not {msg_id_type}")
        self.smsc = smsc
        self.workdir = Path(workdir)
        self.msg_id_type = msg_id_type
        self.interface_version = interface_version
        self.enquire_link_interval = enquire_link_interval
        self.default_sender = default_sender
        self.log_level = log_level
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.smsc_settings = dict(smsc_settings or {})
        self.core_settings = dict(core_settings or {})
        self.smsbox_settings = dict(smsbox_settings or {})
        self.bearerbox_path = bearerbox or shutil.which("bearerbox") or "/usr/sbin/bearerbox"
        self.smsbox_path = smsbox or shutil.which("smsbox") or "/usr/sbin/smsbox"
        self._own_catcher = catcher is None
        self.catcher = catcher or Catcher()
        self.ports = _Ports()
        self.admin_password = secrets.token_hex(8)
        self.sendsms_user = "tester"
        self.sendsms_password = secrets.token_hex(8)
        self.conf_path = self.workdir / "kannel.conf"
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    # -------------------------------------------------------------------------------------- configuration

    def log_path(self, name: str) -> Path:
        """Path of a log in the scratch directory: ``bearerbox``, ``smsbox``, ``smsc``, ``bearerbox-access``,
        ``smsbox-access``, or ``<daemon>.stdout`` for a daemon's own output."""
        return self.workdir / f"{name}.log"

    def config_text(self) -> str:
        """The ``kannel.conf`` this box runs with (its URLs name the catcher's port: start the catcher first)."""
        core: dict[str, str | int | bool | None] = {
            "admin-port": self.ports.admin,
            "admin-interface": LOCALHOST,
            "admin-password": self.admin_password,
            "status-password": self.admin_password,
            "admin-allow-ip": LOCALHOST,
            "admin-deny-ip": "*.*.*.*",
            "smsbox-port": self.ports.smsbox,
            "smsbox-interface": LOCALHOST,
            "box-allow-ip": LOCALHOST,
            "box-deny-ip": "*.*.*.*",
            "log-file": str(self.log_path("bearerbox")),
            "log-level": self.log_level,
            "access-log": str(self.log_path("bearerbox-access")),
            # Receipts are matched in memory; no store-file either, so nothing outlives the run.
            "dlr-storage": "internal",
        }
        core.update(self.core_settings)
        smsc: dict[str, str | int | bool | None] = {
            "smsc": "smpp",
            "smsc-id": SMSC_ID,
            "host": self.smsc.host,
            "port": self.smsc.port,
            # Bind the client side to loopback too, unless the SMSC lives elsewhere.
            "our-host": LOCALHOST if self.smsc.host == LOCALHOST else None,
            "transceiver-mode": True,
            "smsc-username": self.smsc.system_id,
            "smsc-password": self.smsc.password,
            "system-type": self.smsc.system_type,
            "interface-version": self.interface_version,
            "msg-id-type": self.msg_id_type,
            "enquire-link-interval": self.enquire_link_interval,
            # A test SMSC may start a moment after Kannel, or drop the link on purpose: come back quickly.
            "reconnect-delay": 1,
            "log-file": str(self.log_path("smsc")),
            "log-level": self.log_level,
        }
        smsc.update(self.smsc_settings)
        smsbox: dict[str, str | int | bool | None] = {
            "bearerbox-host": LOCALHOST,
            "bearerbox-port": self.ports.smsbox,
            "sendsms-port": self.ports.sendsms,
            "sendsms-interface": LOCALHOST,
            "log-file": str(self.log_path("smsbox")),
            "log-level": self.log_level,
            "access-log": str(self.log_path("smsbox-access")),
            # No global-sender: smsbox would put it in the MO's %P (it prepares the reply's sender there), hiding
            # the number the phone wrote to. send_sms always passes a sender instead.
        }
        smsbox.update(self.smsbox_settings)
        sendsms_user: dict[str, str | int | bool | None] = {
            "username": self.sendsms_user,
            "password": self.sendsms_password,
            "default-smsc": SMSC_ID,
            "concatenation": True,
            "max-messages": 10,
            "user-allow-ip": LOCALHOST,
        }
        sms_service: dict[str, str | int | bool | None] = {
            "keyword": "default",
            "catch-all": True,
            "get-url": self.catcher.mo_url(),
            # No reply SMS back to the phone: the catcher's empty answer would otherwise become one.
            "max-messages": 0,
            "omit-empty": True,
        }
        return "\n".join(
            [
                "# Written by tests/interop/kannel.py for one test run.\n",
                _group("core", core),
                _group("smsc", smsc),
                _group("smsbox", smsbox),
                _group("sendsms-user", sendsms_user),
                _group("sms-service", sms_service),
            ]
        )

    # ---------------------------------------------------------------------------------------------- life

    def start(self) -> Self:
        """Write the config, start bearerbox then smsbox, and wait for the bind and for sendsms.

        Raises :class:`KannelError` (with the logs) if either daemon exits or the bind is not online within
        ``startup_timeout``; the daemons are stopped before it is raised.
        """
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.catcher.start()
        self.conf_path.write_text(self.config_text())
        deadline = time.monotonic() + self.startup_timeout
        try:
            self._spawn("bearerbox", self.bearerbox_path)
            self._wait_until(deadline, "the admin interface to answer", lambda: self._status_xml() is not None)
            self._spawn("smsbox", self.smsbox_path)
            self._wait_until(deadline, f"the SMPP link to {self.smsc.host}:{self.smsc.port} online", self.is_online)
            self._wait_until(deadline, "smsbox to connect to bearerbox", self._smsbox_connected)
            self._wait_until(deadline, "sendsms to accept connections", self._sendsms_listening)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop smsbox then bearerbox: SIGTERM, then SIGKILL after ``timeout`` (default ``stop_timeout``) seconds.

        A clean bearerbox stop sends unbind and waits for unbind_resp; an SMSC that never answers would hold
        it for Kannel's own 30 s, hence the kill.
        """
        timeout = self.stop_timeout if timeout is None else timeout
        for name in ("smsbox", "bearerbox"):
            proc = self._procs.pop(name, None)
            if proc is None:
                continue
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=timeout)
        if self._own_catcher:
            self.catcher.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)

    def _spawn(self, name: str, executable: str) -> None:
        out = self.log_path(f"{name}.stdout").open("wb")
        with out:
            self._procs[name] = subprocess.Popen(
                # Console at INFO: it catches what Kannel says before its log files open (a refused
                # config panics there); the files hold the DEBUG detail.
                [executable, "-v", "1", str(self.conf_path)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env={**os.environ, "LC_ALL": "C"},
            )

    def _wait_until(self, deadline: float, what: str, condition: Callable[[], bool]) -> None:
        while True:
            self.check_running()
            if condition():
                return
            if time.monotonic() >= deadline:
                raise self.error(f"gave up waiting for {what} after {self.startup_timeout:.0f}s")
            time.sleep(0.1)

    def running(self) -> list[str]:
        """Names of the daemons this box started that are still alive."""
        return [name for name, proc in self._procs.items() if proc.poll() is None]

    def check_running(self) -> None:
        """Raise :class:`KannelError` if a daemon this box started has exited."""
        for name, proc in self._procs.items():
            code = proc.poll()
            if code is not None:
                raise self.error(f"{name} exited with status {code}")

    # ----------------------------------------------------------------------------------------- diagnosis

    def error(self, message: str, lines: int = 40) -> KannelError:
        """A :class:`KannelError` for ``message`` with the config and the last ``lines`` of every log."""
        parts = [message, f"--- {self.conf_path}", self.conf_path.read_text() if self.conf_path.exists() else ""]
        # DEBUG lines only from the SMPP log, where they are the PDU dumps; elsewhere they are mostly the
        # harness's own status polling.
        # The consoles repeat the log files at INFO; their last lines matter when a daemon died before opening
        # its log file (a refused config).
        for name in ("bearerbox.stdout", "bearerbox", "smsbox.stdout", "smsbox", "smsbox-access", "smsc"):
            debug = name == "smsc"
            count = min(lines, 10) if name.endswith(".stdout") else lines
            parts.append(f"--- {self.log_path(name)} (last {count} {'' if debug else 'non-DEBUG '}lines)")
            parts.append(_tail(self.log_path(name), count, debug=debug))
        return KannelError("\n".join(parts))

    def logs(self) -> dict[str, str]:
        """Every log's full text, by name (see :meth:`log_path`)."""
        return {path.stem: path.read_text(errors="replace") for path in sorted(self.workdir.glob("*.log"))}

    # ------------------------------------------------------------------------------------------- status

    def _admin_get(self, command: str, **params: str) -> tuple[int, str] | None:
        query = urllib.parse.urlencode({"password": self.admin_password, **params})
        url = f"http://{LOCALHOST}:{self.ports.admin}/{command}?{query}"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.status, resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", "replace")
        except (OSError, TimeoutError):
            return None

    def _status_xml(self) -> ET.Element | None:
        answer = self._admin_get("status.xml")
        if answer is None or answer[0] != 200:
            return None
        try:
            return ET.fromstring(answer[1])
        except ET.ParseError:
            return None

    def smsc_status(self) -> str | None:
        """The SMSC link's status from bearerbox's ``status.xml`` ("online 3s", "connecting", ...), or None."""
        root = self._status_xml()
        if root is None:
            return None
        for smsc in root.iter("smsc"):
            if smsc.findtext("id") == SMSC_ID:
                return (smsc.findtext("status") or "").strip()
        return None

    def is_online(self) -> bool:
        """Whether bearerbox reports the SMPP bind online."""
        status = self.smsc_status()
        return status is not None and status.startswith("online")

    def _smsbox_connected(self) -> bool:
        root = self._status_xml()
        return root is not None and any(box.findtext("type") == "smsbox" for box in root.iter("box"))

    def _sendsms_listening(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection((LOCALHOST, self.ports.sendsms), timeout=1):
            return True
        return False

    def wait_online(self, timeout: float = 10.0) -> None:
        """Wait until the SMPP bind is online again (after the SMSC dropped it, say)."""
        self._wait_until(time.monotonic() + timeout, "the SMPP link online", self.is_online)

    def status_text(self) -> str:
        """bearerbox's ``status.txt`` as text, for a failure message or a person."""
        answer = self._admin_get("status.txt")
        return "(admin interface not answering)" if answer is None else answer[1]

    # ------------------------------------------------------------------------------------------ sending

    def send_sms(
        self,
        to: str,
        text: str,
        *,
        from_: str | None = None,
        dlr_url: str | None = None,
        dlr_mask: int = DLR_SUCCESS | DLR_FAIL | DLR_BUFFERED | DLR_SMSC_SUCCESS | DLR_SMSC_FAIL,
        coding: int | None = None,
        charset: str = "UTF-8",
        extra: Mapping[str, str] | None = None,
        check: bool = True,
        timeout: float = 10.0,
    ) -> SendSmsResult:
        """Submit a message through smsbox's ``/cgi-bin/sendsms``.

        ``text`` is sent as ``charset`` (UTF-8); Kannel recodes it for the SMSC. ``coding`` is Kannel's: 0 GSM
        7-bit (default), 1 8-bit, 2 UCS-2. ``dlr_mask`` is sent only with a ``dlr_url`` (use
        :meth:`Catcher.dlr_url`). ``extra`` adds raw sendsms parameters (``validity``, ``mclass``...).
        With ``check`` (the default) a refusal raises :class:`KannelError` with the logs.
        """
        params: dict[str, str] = {
            "username": self.sendsms_user,
            "password": self.sendsms_password,
            "to": to,
            "text": text,
            "charset": charset,
            "from": from_ if from_ is not None else self.default_sender,
        }
        if dlr_url is not None:
            params["dlr-url"] = dlr_url
            params["dlr-mask"] = str(dlr_mask)
        if coding is not None:
            params["coding"] = str(coding)
        params.update(extra or {})
        query = urllib.parse.urlencode(params, encoding=charset)
        url = f"http://{LOCALHOST}:{self.ports.sendsms}/cgi-bin/sendsms?{query}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                result = SendSmsResult(resp.status, resp.read().decode("utf-8", "replace").strip())
        except urllib.error.HTTPError as exc:
            result = SendSmsResult(exc.code, exc.read().decode("utf-8", "replace").strip())
        except OSError as exc:
            raise self.error(f"sendsms request failed: {exc!r}") from exc
        if check and not result.accepted:
            raise self.error(f"sendsms refused the message: {result.status} {result.body!r}")
        return result
