"""The ``carrier-sim`` console script (``[project.scripts]`` in pyproject.toml).

It takes SIGINT and SIGTERM over before the command is imported: loading :mod:`carrier_sim.cli` and what it
imports (numpy, the SMSC) takes a few tenths of a second, in which Python's defaults ended the command with a
KeyboardInterrupt traceback or killed it, and a supervisor or CI job that stops a command it has just started
signals it then. What comes meanwhile is kept (:class:`~carrier_sim.signals.StartupSignals`) until the command can
act on it. Only Python's own start-up (the interpreter and ``site``, a few tens of milliseconds) comes before this.
When the command is over, the handlers the process was started with are back for the rest of its life.
"""

from __future__ import annotations

from carrier_sim.signals import StartupSignals

__all__ = ["main"]


def main() -> int:
    """Entry point of the ``carrier-sim`` console script: :func:`carrier_sim.cli.main`, its start-up covered."""
    startup = StartupSignals()
    startup.install()
    try:
        from carrier_sim.cli import main as command  # the heavy imports, which the handlers above now cover

        return command(startup=startup)
    finally:
        # The process ends (atexit hooks, joining children) with the handlers it started with, not with whatever
        # the command left in place (a keeper of its own, or this one after a bad flag): a signal then is heard.
        startup.restore()
