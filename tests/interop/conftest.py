"""Shared helpers of the interop tests: find the third-party software they run, or skip.

Interop tests need software the project does not ship (tshark, Kannel, smpplib...). On a developer machine a
missing tool skips the test with the reason; in CI, ``REQUIRE_INTEROP=1`` turns the same absence into a
failure, so an interop suite cannot pass by silently testing nothing.
"""

from __future__ import annotations

import importlib
import os
import shutil
from types import ModuleType
from typing import NoReturn

import pytest

__all__ = ["SYSTEM_DIRS", "interop_required", "require_executable", "require_module"]


def interop_required() -> bool:
    """True when the environment demands that every interop test really runs (``REQUIRE_INTEROP=1``)."""
    return os.environ.get("REQUIRE_INTEROP") == "1"


def _unavailable(reason: str) -> NoReturn:
    if interop_required():
        pytest.fail(f"REQUIRE_INTEROP=1 but {reason}", pytrace=False)
    # allow_module_level: the helpers also work at import time of a test module.
    pytest.skip(reason, allow_module_level=True)


#: Where system daemons live even when PATH (a non-root user's, a CI image's) leaves them out: Debian's kannel
#: package puts bearerbox and smsbox in /usr/sbin.
SYSTEM_DIRS: tuple[str, ...] = ("/usr/sbin", "/sbin")


def require_executable(name: str) -> str:
    """The path of executable ``name`` on PATH, else in /usr/sbin or /sbin; skips (or fails under
    REQUIRE_INTEROP=1) when absent from all of them."""
    path = shutil.which(name) or shutil.which(name, path=os.pathsep.join(SYSTEM_DIRS))
    if path is None:
        _unavailable(f"{name} is not installed (not found on PATH nor in {', '.join(SYSTEM_DIRS)})")
    return path


def require_module(name: str) -> ModuleType:
    """Python module ``name``, imported; skips (or fails under REQUIRE_INTEROP=1) when it cannot be imported."""
    try:
        return importlib.import_module(name)
    except ImportError as err:
        _unavailable(f"Python module {name} cannot be imported: {err}")
