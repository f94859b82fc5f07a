"""Batch claims of a sweep folder: which live process trains which batch, held by a renewed lease.

``claims/<batch_id>.json`` is created exclusively (``O_EXCL``) by the process about to train the batch and
records ``{pid, host, start, lease_s}``. While it trains, the holder renews the claim (touches its file) every
``lease_s / 4`` seconds from a heartbeat thread (:meth:`Claims.holding`). A claim is stale, and another process
takes the batch over, when

- its holder is on this host and gone: its pid is dead, or reused by a process started at another time;
- its holder is on another host (its pid cannot be checked) and has not renewed it for ``lease_s``;
- it cannot be read (torn by a kill while being written) and is older than 10 s.

So a sweep resumed on another machine waits at most one lease for a dead process's batches, never a day.
Taking a stale claim over is race-free: the claim is moved aside, judged again, and put back (``os.link``
never overwrites) if its holder renewed it in between. Times are file modification times, so hosts sharing a
folder over a network file system are compared on the file server's clock.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ...runs import make_temp, pid_alive

LEASE_S = 120.0  # a claim not renewed this long by a holder on another host is stale
TORN_S = 10.0  # an unreadable claim (torn by a kill mid-write) older than this is stale


def process_start(pid: int) -> float | None:
    """Start time of a process (to tell a reused pid from the claimer), or None if unknown."""
    try:
        import psutil

        return psutil.Process(pid).create_time()
    except Exception:
        return None


class Claims:
    """The claim files of one sweep folder's ``claims/`` directory."""

    def __init__(self, folder: Path, lease_s: float = LEASE_S) -> None:
        self.folder, self.lease_s = Path(folder), lease_s

    def path(self, batch_id: str) -> Path:
        return self.folder / f"{batch_id}.json"

    def claim(self, batch_id: str) -> bool:
        """Claim a batch for this process; True if we hold it now. A stale claim is taken over."""
        path = self.path(batch_id)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "start": process_start(os.getpid()),
              "time": time.time(), "lease_s": self.lease_s}
        for _ in range(3):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                if not self.is_stale(batch_id) or not self._take_over(path):
                    return False
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(me, fh)
            return True
        return False

    def _take_over(self, path: Path) -> bool:
        """Move a stale claim aside; True when it was still stale once moved (else it is put back)."""
        grave = make_temp(self.folder, path.name, kind="old")
        try:
            os.replace(path, grave)
        except FileNotFoundError:
            grave.unlink(missing_ok=True)
            return True
        if self._stale(self._read(grave), grave):
            grave.unlink(missing_ok=True)
            return True
        try:
            os.link(grave, path)
        except FileExistsError:
            pass
        grave.unlink(missing_ok=True)
        return False

    @staticmethod
    def _read(path: Path) -> dict[str, Any] | None:
        try:
            owner = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (ValueError, OSError):
            return {}  # being written right now, or torn by a kill: judged by age
        return owner if isinstance(owner, dict) else {}

    def owner(self, batch_id: str) -> dict[str, Any] | None:
        """The claim's holder record: None if unclaimed, {} if unreadable."""
        return self._read(self.path(batch_id))

    def is_stale(self, batch_id: str) -> bool:
        """True if the batch is unclaimed or its claim is stale (see the module docstring)."""
        path = self.path(batch_id)
        return self._stale(self._read(path), path)

    def _stale(self, owner: dict[str, Any] | None, path: Path) -> bool:
        if owner is None:
            return True
        try:
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return True
        if not owner:
            return age > TORN_S
        if owner.get("host") != socket.gethostname():
            return age > float(owner.get("lease_s") or self.lease_s)
        try:
            pid = int(owner.get("pid", -1))
        except (TypeError, ValueError):
            return age > TORN_S
        if pid == os.getpid():
            return False
        if not pid_alive(pid):
            return True
        start, now_start = owner.get("start"), process_start(pid)
        return start is not None and now_start is not None and abs(start - now_start) > 1e-3

    def release(self, batch_id: str) -> None:
        self.path(batch_id).unlink(missing_ok=True)

    def live(self) -> list[str]:
        """Batch ids with a claim that is not stale."""
        if not self.folder.is_dir():
            return []
        return [p.stem for p in self.folder.glob("*.json") if not p.name.startswith(".") and not self.is_stale(p.stem)]

    def renew(self, batch_ids: Iterable[str]) -> None:
        """Touch our claims: the heartbeat that keeps their lease."""
        for bid in batch_ids:
            try:
                os.utime(self.path(bid))
            except FileNotFoundError:
                pass

    @contextmanager
    def holding(self, batch_ids: Iterable[str]) -> Iterator[None]:
        """Renew ``batch_ids``' claims every ``lease_s / 4`` seconds while the block runs (a daemon thread)."""
        ids, stop = list(batch_ids), threading.Event()

        def beat() -> None:
            while not stop.wait(self.lease_s / 4):
                self.renew(ids)

        thread = threading.Thread(target=beat, name="forgetlab-claims", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(5)
