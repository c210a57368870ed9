"""Resource faults on the machine: memory pressure, CPU burn, a filling disk.

Bounded three ways: parameters are capped against what the machine has; the helper
processes stop by themselves at the fault's deadline (so even a lost registry cannot leave
a CPU burner behind) and die with the stack; the disk-fill file carries a recognizable
name so the next ``stack up`` removes one left by a killed harness.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from gameday.faults.base import FaultContext, Handle, check, register
from gameday.faults.errors import FaultError

FILL_PREFIX = ".gameday-disk-fill-"
_MIB = 1 << 20

_HOG = (
    "import sys, time\n"
    "block = b'\\x01' * (int(sys.argv[1]) << 20)  # written, so every page is resident\n"
    "time.sleep(float(sys.argv[2]))\n"
)
_BURN = (
    "import sys, time\n"
    "end = time.monotonic() + float(sys.argv[1])\n"
    "while time.monotonic() < end:\n"
    "    pass\n"
)


def _available_mb() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    return 0


def _kill(handle: Handle) -> None:
    for pid in handle.get("pids", []):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)


@register
@dataclass(frozen=True)
class Memory:
    """A process holding ``mb`` MiB resident; at most half of the memory available."""

    kind: ClassVar[str] = "memory"
    target: str = "host"
    mb: int = 512

    def inject(self, ctx: FaultContext) -> Handle:
        cap = _available_mb() // 2
        check(1 <= self.mb <= cap, self.kind, f"mb must be between 1 and {cap} (half of free)")
        argv = [sys.executable, "-c", _HOG, str(self.mb), str(ctx.budget_s())]
        return {"pids": [ctx.spawn_load(argv, "memory-hog")]}

    def heal(self, ctx: FaultContext, handle: Handle) -> None:
        _kill(handle)


@register
@dataclass(frozen=True)
class Cpu:
    """``workers`` busy loops (at most one per core)."""

    kind: ClassVar[str] = "cpu"
    target: str = "host"
    workers: int = 1

    def inject(self, ctx: FaultContext) -> Handle:
        cores = os.cpu_count() or 1
        check(1 <= self.workers <= cores, self.kind, f"workers must be between 1 and {cores}")
        argv = [sys.executable, "-c", _BURN, str(ctx.budget_s())]
        return {"pids": [ctx.spawn_load(argv, f"cpu-burn-{i}") for i in range(self.workers)]}

    def heal(self, ctx: FaultContext, handle: Handle) -> None:
        _kill(handle)


@register
@dataclass(frozen=True)
class DiskFill:
    """A file of ``mb`` MiB allocated in ``path``, refused if it would leave less than
    ``leave_free_mb`` free: the drill fills a disk, never the machine's."""

    kind: ClassVar[str] = "disk_fill"
    target: str = "host"
    path: str = ""
    mb: int = 256
    leave_free_mb: int = 1024

    def inject(self, ctx: FaultContext) -> Handle:
        directory = Path(self.path or ctx.data_dir())
        if not directory.is_dir():
            raise FaultError(f"{self.kind}: {directory} is not a directory")
        free_mb = shutil.disk_usage(directory).free // _MIB
        check(self.mb >= 1, self.kind, "mb must be at least 1")
        check(free_mb - self.mb >= self.leave_free_mb, self.kind,
              f"{self.mb} MiB would leave {free_mb - self.mb} MiB free in {directory}, "
              f"below leave_free_mb={self.leave_free_mb}")  # fmt: skip
        fill = directory / f"{FILL_PREFIX}{uuid.uuid4().hex[:12]}"
        try:
            fd = os.open(fill, os.O_CREAT | os.O_WRONLY | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except OSError as error:
            raise FaultError(
                f"{self.kind}: cannot write in {directory}: {error.strerror}"
            ) from None
        try:
            os.posix_fallocate(fd, 0, self.mb * _MIB)
        except OSError as error:
            fill.unlink(missing_ok=True)
            raise FaultError(f"{self.kind}: cannot allocate in {directory}: {error}") from None
        finally:
            os.close(fd)
        return {"path": str(fill)}

    def heal(self, ctx: FaultContext, handle: Handle) -> None:
        path = handle.get("path")
        if path and Path(path).name.startswith(FILL_PREFIX):
            Path(path).unlink(missing_ok=True)
