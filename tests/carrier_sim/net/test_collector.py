"""settle_after_start: what is alive when a server starts stays out of later collections."""

from __future__ import annotations

import subprocess
import sys


def test_objects_alive_at_start_are_frozen_and_later_ones_are_not() -> None:
    # In a child: freezing is process-wide and would leak into the rest of the test session.
    code = (
        "import gc\n"
        "from carrier_sim.net.collector import settle_after_start\n"
        "before = [object() for _ in range(3)], {}\n"
        "settle_after_start()\n"
        "frozen = gc.get_freeze_count()\n"
        "after = [{} for _ in range(1000)]\n"
        "assert gc.get_freeze_count() == frozen, 'later objects must stay collectable'\n"
        "assert frozen > 1000, frozen\n"
        "assert not any(o is before for o in gc.get_objects()), 'start-up objects are out of the generations'\n"
        "print(frozen)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 1000

