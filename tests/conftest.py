import threading
import time
from pathlib import Path

import pytest
import torch

# The course's models are small: one thread is faster than two fighting over
# two cores, and it keeps timings steady when other work shares the machine.
torch.set_num_threads(1)


def _worker_processes() -> list[int]:
    """Process ids of live worker processes of a parallel run (DNI or pipeline backprop)."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"-m dni_lite.parallel" in cmd and b"--config" in cmd:
            pids.append(int(proc.name))
    return pids


@pytest.fixture
def worker_processes():
    """A function listing the live worker processes (to check that Stop leaves none behind)."""
    return _worker_processes


@pytest.fixture
def closes_like_stop():
    """A function that closes a running experiment as the panel's Stop does and asserts that it
    ended within a second, leaving no worker process and no benchmark helper thread behind."""
    def close(run) -> None:
        time.sleep(0.3)
        start = time.monotonic()
        run.close()
        assert time.monotonic() - start < 1.0
        assert not _worker_processes()
        assert not [t for t in threading.enumerate() if t.name == "dni-lite-bench" and t.is_alive()]
    return close
