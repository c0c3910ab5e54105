"""Where a results file came from: the command, versions, commit, machine and date.

Every results file the course ships (benchmarks, reference runs) carries this
record, so a number in a notebook can always be traced to the run that made it.
"""
from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .parallel.devices import device_name


def commit() -> str | None:
    """The git commit of this checkout (``DNI_LITE_COMMIT`` for a copy without .git), or None."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        head = ""
    return head or os.environ.get("DNI_LITE_COMMIT") or None


def uncommitted() -> list[str] | None:
    """The package's files that differ from ``commit()`` (empty for a clean checkout), or None
    without git: a run made with uncommitted code says so, since its commit alone would not
    reproduce it."""
    package = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "."],
                             capture_output=True, text=True, cwd=package, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return sorted(line[3:] for line in out.stdout.splitlines() if line.strip())


def provenance(command: str) -> dict[str, Any]:
    """The record of a run started by ``command`` (as a user would type it)."""
    return {"command": command, "dni_lite": __version__, "commit": commit(),
            "uncommitted": uncommitted(),
            "torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "device": device_name("cpu"), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
