"""The ``carrier-sim`` console script acts on a SIGINT or SIGTERM that comes while the command is still loading
(carrier_sim.console): ``run`` stops before it starts (exit 3, its reports say so), ``smsc`` and ``carriers`` stop
as they do at any other time (exit 0), any other command dies of the signal before it starts; never a
KeyboardInterrupt traceback, never SIGTERM's default death with nothing written.

The real console script is started and signalled from outside, a few hundredths to tenths of a second after the
project's own code begins to load: ``PYTHONPROFILEIMPORTTIME`` writes a line to stderr as each module is imported,
and the one for the ``carrier_sim`` package marks that moment, after Python's own start-up (the interpreter and
``site``), which no code of the project can cover, and before the command's modules (numpy, the SMSC, the runner:
a few tenths of a second). The old console script (carrier_sim.cli:main) met each of these signals with a
traceback (SIGINT) or died of it (SIGTERM).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from tests.carrier_sim.runner.test_command import TINY

ROOT = Path(__file__).resolve().parents[2]
#: The console script of this virtual environment, as a user or CI job runs it.
SCRIPT = Path(sys.executable).with_name("carrier-sim")
#: When the ``carrier_sim`` package has been imported (PYTHONPROFILEIMPORTTIME's line for it).
LOADING = re.compile(r"^import time:.*\|\s+carrier_sim$", re.MULTILINE)
#: When :mod:`carrier_sim.cli` has been imported: what follows are the command's own imports (the scenario loader,
#: jsonschema, identity_core's config: about 0.15 s for ``validate``; aiohttp and rich for ``demo``).
COMMAND_LOADING = re.compile(r"^import time:.*\|\s+carrier_sim\.cli$", re.MULTILINE)
#: Seconds after LOADING at which the signal is sent: all while the command is still loading.
DELAYS = (0.02, 0.06, 0.15, 0.3)
SIGNALS = pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])


def _signalled(tmp_path: Path, sig: signal.Signals, delay: float, *args: str,
               mark: re.Pattern[str] = LOADING) -> tuple[int, str, str]:
    """Run ``carrier-sim ARGS``, send it ``sig`` ``delay`` seconds after its own code began to load (after the
    import ``mark`` matches); its exit status, stdout and stderr."""
    out_path, err_path = tmp_path / "stdout", tmp_path / "stderr"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        process = subprocess.Popen([str(SCRIPT), *args], cwd=tmp_path, stdout=out, stderr=err,
                                   env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"})
    try:
        deadline = time.monotonic() + 60
        while not mark.search(err_path.read_text(encoding="utf-8", errors="replace")):
            assert process.poll() is None, err_path.read_text(encoding="utf-8", errors="replace")
            assert time.monotonic() < deadline, "the carrier_sim package was never imported"
            time.sleep(0.001)
        time.sleep(delay)
        process.send_signal(sig)
        code = process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr = "".join(line for line in err_path.read_text(encoding="utf-8").splitlines(keepends=True)
                     if not line.startswith("import time:"))
    return code, out_path.read_text(encoding="utf-8"), stderr


def test_the_console_script_is_the_module_that_covers_the_start_up() -> None:
    # The installed script must be rebuilt (pip install -e .) when [project.scripts] changes.
    [script] = [e for e in entry_points(group="console_scripts") if e.name == "carrier-sim"]
    assert script.value == "carrier_sim.console:main"
    assert "carrier_sim.console" in SCRIPT.read_text(encoding="utf-8")


@SIGNALS
@pytest.mark.parametrize("delay", DELAYS)
def test_a_signal_while_run_loads_stops_it_before_it_starts_with_reports_and_exit_3(
        tmp_path: Path, sig: signal.Signals, delay: float) -> None:
    (tmp_path / "tiny.yaml").write_text(TINY, encoding="utf-8")
    code, out, err = _signalled(tmp_path, sig, delay, "run", "tiny.yaml", "--no-dashboard", "--json",
                                "report.json", "--junit", "junit.xml")
    assert code == 3, out + err
    assert "Traceback" not in err, err
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert report["harness_errors"] == [
        f"interrupted by {sig.name} while the run was starting; the reports cover the run until then"]
    assert f"error  harness: interrupted by {sig.name} while the run was starting" in out
    # Both reports whole, and nothing half-written beside them.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junit.xml", "report.json", "stderr", "stdout",
                                                         "tiny.yaml"]


@SIGNALS
@pytest.mark.parametrize("delay", DELAYS)
def test_a_signal_while_smsc_loads_stops_it_as_at_any_time_exit_0(
        tmp_path: Path, sig: signal.Signals, delay: float) -> None:
    code, out, err = _signalled(tmp_path, sig, delay, "smsc", "--listen", "127.0.0.1:0", "--account", "a:b",
                                "--json", "report.json")
    assert code == 0, out + err
    assert "Traceback" not in err, err
    assert out.startswith("listening on 127.0.0.1:"), out  # as for a signal just after it began to listen
    assert json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))["sessions"] == []


@SIGNALS
def test_a_signal_while_carriers_loads_stops_it_exit_0(tmp_path: Path, sig: signal.Signals) -> None:
    (tmp_path / "tiny.yaml").write_text(TINY, encoding="utf-8")
    code, out, err = _signalled(tmp_path, sig, DELAYS[1], "carriers", "tiny.yaml")
    assert code == 0, out + err
    assert "Traceback" not in err, err
    assert "listening" not in out  # stopped before any door was announced


@SIGNALS
def test_a_signal_while_another_command_loads_ends_it_as_the_signal_does_without_a_traceback(
        tmp_path: Path, sig: signal.Signals) -> None:
    (tmp_path / "tiny.yaml").write_text(TINY, encoding="utf-8")
    code, out, err = _signalled(tmp_path, sig, DELAYS[0], "validate", "tiny.yaml")
    assert code == -sig, out + err
    assert "Traceback" not in err, err
    assert out == ""  # killed before it validated anything


@SIGNALS
@pytest.mark.parametrize("delay", [0.02, 0.08])
@pytest.mark.parametrize("command", [["validate", "tiny.yaml"], ["plan", "tiny.yaml"], ["demo"]],
                         ids=["validate", "plan", "demo"])
def test_a_signal_while_the_commands_own_modules_load_ends_it_before_it_starts_without_a_traceback(
        tmp_path: Path, sig: signal.Signals, delay: float, command: list[str]) -> None:
    # The signal lands while the command imports what it needs (after carrier_sim.cli, before the command runs).
    # The startup handlers were released before those imports: a SIGINT there was a KeyboardInterrupt traceback
    # from inside jsonschema or aiohttp.
    (tmp_path / "tiny.yaml").write_text(TINY, encoding="utf-8")
    code, out, err = _signalled(tmp_path, sig, delay, *command, mark=COMMAND_LOADING)
    assert code == -sig, out + err
    assert "Traceback" not in err, err
    assert out == ""  # killed before it did anything


# ``python -c AT_EXIT carrier-sim-args...`` runs the console script's main() as the script does, and then, in an
# atexit hook (where a process joins its children and flushes its files), says which handlers SIGINT and SIGTERM
# have and sends itself SIGTERM: with the handlers the process started with, that ends it there.
AT_EXIT = """
import atexit, os, signal, sys, time
from carrier_sim import console

def name(handler):
    return handler.name if isinstance(handler, signal.Handlers) else getattr(handler, "__qualname__", repr(handler))

def at_exit():
    print("at exit: SIGINT", name(signal.getsignal(signal.SIGINT)), "SIGTERM", name(signal.getsignal(signal.SIGTERM)),
          flush=True)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(10)
    print("alive after SIGTERM", flush=True)

atexit.register(at_exit)
try:
    code = console.main()
except SystemExit as stop:
    code = stop.code
print("exit", code, flush=True)
sys.exit(code)
"""
#: Each case: carrier-sim's arguments, the line on stdout after which it is stopped with SIGTERM (None: it ends by
#: itself), its exit status.
AFTER_A_COMMAND = {
    "run": (["run", "tiny.yaml", "--no-dashboard"], None, 0),
    "run-invalid-scenario": (["run", "bad.yaml", "--no-dashboard"], None, 2),
    "run-bad-flag": (["run", "tiny.yaml", "--workers", "many"], None, 2),
    "validate": (["validate", "tiny.yaml"], None, 0),
    "smsc": (["smsc", "--listen", "127.0.0.1:0", "--account", "a:b"], "listening on", 0),
    "smsc-no-account": (["smsc", "--listen", "127.0.0.1:0"], None, 2),
    "carriers": (["carriers", "tiny.yaml"], "listening smpp", 0),
    "carriers-invalid-scenario": (["carriers", "bad.yaml"], None, 2),
}


def _after_a_command(tmp_path: Path, case: str, *, ignore_sigint: bool = False) -> tuple[int, str, str]:
    args, stop_after, _ = AFTER_A_COMMAND[case]
    (tmp_path / "tiny.yaml").write_text(TINY, encoding="utf-8")
    (tmp_path / "bad.yaml").write_text("name: bad\n", encoding="utf-8")
    # As a shell script's ``command &`` starts it.
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint else None
    process = subprocess.Popen([sys.executable, "-c", AT_EXIT, *args], cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, preexec_fn=ignore,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        if stop_after is not None:
            assert process.stdout is not None
            lines = []
            while not (lines and lines[-1].startswith(stop_after)):
                line = process.stdout.readline()
                assert line, "".join(lines)
                lines.append(line)
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=60)
            out = "".join(lines) + out
        else:
            out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, out, err


@pytest.mark.parametrize("case", list(AFTER_A_COMMAND))
def test_once_the_command_is_over_the_process_has_its_handlers_from_before_and_a_signal_ends_it(
        tmp_path: Path, case: str) -> None:
    # run's keeper gave back the handler it had replaced, the console script's keeper, and a command that ended
    # before it took the kept signals (a bad flag, file or config) left that keeper in place: from then on, for the
    # rest of the process (atexit hooks, joining children), SIGINT and SIGTERM were kept for no one.
    code, out, err = _after_a_command(tmp_path, case)
    assert f"exit {AFTER_A_COMMAND[case][2]}\n" in out, out + err
    assert "at exit: SIGINT default_int_handler SIGTERM SIG_DFL\n" in out, out + err
    assert "alive after SIGTERM" not in out
    assert code == -signal.SIGTERM, out + err


@pytest.mark.parametrize("case", ["run", "validate", "smsc", "carriers"])
def test_a_sigint_the_process_was_started_ignoring_is_ignored_again_once_the_command_is_over(
        tmp_path: Path, case: str) -> None:
    # smsc and carriers handle it while they serve (a stop, as for SIGTERM); asyncio gave it Python's default
    # handler (KeyboardInterrupt) as the loop closed.
    code, out, err = _after_a_command(tmp_path, case, ignore_sigint=True)
    assert f"exit {AFTER_A_COMMAND[case][2]}\n" in out, out + err
    assert "at exit: SIGINT SIG_IGN SIGTERM SIG_DFL\n" in out, out + err
    assert code == -signal.SIGTERM, out + err
