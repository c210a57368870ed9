"""The stack's reaper: a tiny process that outlives a harness killed with ``kill -9`` just
long enough to remove what the harness could not — the stack's directory (database files,
logs) and any disk-fill file.

Every other child dies with the harness through the kernel's parent-death signal; this one
deliberately does not (it runs in its own session without it), waits for the owner's death
through a pidfd, sweeps, and exits. On a normal stop the harness removes the directory
itself and then ends the reaper. Run as ``python -m gameday.stack.reaper PID DIR``.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

from gameday.stack.state import sweep_dir


def watch(pid: int, directory: Path, poll_s: float = 0.5) -> None:
    """Block until ``pid`` is gone (a pidfd where the kernel has one, polling otherwise)."""
    try:
        fd = os.pidfd_open(pid)
    except (OSError, AttributeError):
        fd = -1
    if fd >= 0:
        with select.epoll() as ep:
            ep.register(fd, select.EPOLLIN)
            while directory.exists() and not ep.poll(poll_s):
                pass
        os.close(fd)
        return
    while directory.exists():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(poll_s)


def start(owner: int, directory: Path) -> subprocess.Popen[bytes]:
    """The reaper for ``directory``, watching ``owner`` (normally this process)."""
    return subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "gameday.stack.reaper", str(owner), str(directory)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C on the harness's terminal must not reach it
    )  # fmt: skip


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[0].isdigit():
        print("usage: python -m gameday.stack.reaper OWNER_PID STACK_DIR", file=sys.stderr)
        return 2
    directory = Path(argv[1])
    watch(int(argv[0]), directory)
    if directory.exists():  # the owner died without removing it
        time.sleep(0.5)  # let the children's death signals land first
        sweep_dir(directory)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
