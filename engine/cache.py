"""The result cache: paid answers on disk, keyed by exactly what produced them, shared by every campaign.

diskcache is configured for this job: no eviction (its default silently drops entries past 1 GiB), JSON on disk
(its default unpickles whatever the file holds), and a folder only the owner can read.

Beside the answers it keeps leases on requests being made (`cache/leases`), so that two processes asking the
same thing at once send it once: the first takes the lease and calls, the second waits for the answer to land
in the cache (or for the lease to end: released, or its holder's process gone).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import diskcache


def cache_key(model: str, params: dict[str, Any], messages: Any, schema: dict[str, Any] | None) -> str:
    """A stable hash of a call: canonical JSON, so it is the same in every process and Python version."""
    canonical = json.dumps(
        {"model": model, "params": params, "messages": messages, "schema": schema},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


class JsonValueDisk(diskcache.Disk):
    """Keys are the hex digests (stored as text), values JSON text: nothing is ever pickled or unpickled, and
    unlike diskcache's JSONDisk nothing is zlib-compressed on the hot path (answers are small)."""

    def put(self, key: Any) -> tuple[Any, bool]:
        if not isinstance(key, str):
            raise TypeError("result cache keys are hex digests")
        return super().put(key)  # type: ignore[no-any-return]

    def store(self, value: Any, read: bool, key: Any = diskcache.UNKNOWN) -> Any:
        return super().store(json.dumps(value, ensure_ascii=False).encode(), read, key=key)

    def fetch(self, mode: int, filename: Any, value: Any, read: bool) -> Any:
        if mode == diskcache.core.MODE_PICKLE:
            raise ValueError("refusing to unpickle a result cache entry")
        return json.loads(super().fetch(mode, filename, value, read))


class Leases:
    """Leases on requests being made, as byte-range locks (POSIX `fcntl`) on one file, `cache/leases`: the byte at
    a slot picked by the request key. Taking and giving one back is two system calls, and the kernel drops a dead
    process's locks, so a crash leaves none behind. Requests that share a slot only wait for each other.

    Locks belong to the process, and closing any descriptor of the file drops them all: one descriptor per file
    and process stays open, and a count per slot keeps two requests of this process that share a slot from
    giving each other's lock back."""

    SLOTS = 1 << 30
    _guard = threading.Lock()
    _files: ClassVar[dict[str, tuple[int, Counter[int]]]] = {}

    def __init__(self, path: Path) -> None:
        self.path = path

    def _file(self) -> tuple[int, Counter[int]]:
        key = str(self.path.absolute())
        opened = self._files.get(key)
        if opened is None:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            opened = self._files[key] = (os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600), Counter())
        return opened

    def take(self, key: str) -> bool:
        """Take the lease on making the request `key`; False while another process holds it."""
        slot = int(hashlib.sha256(key.encode()).hexdigest()[:15], 16) % self.SLOTS
        with self._guard:
            descriptor, held = self._file()
            if not held[slot]:
                try:
                    fcntl.lockf(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, slot)
                except OSError as err:
                    if err.errno in (errno.EACCES, errno.EAGAIN):
                        return False
                    raise
            held[slot] += 1
        return True

    def release(self, key: str) -> None:
        """Give the lease on `key` back (its answer, if any, is in the cache by now)."""
        slot = int(hashlib.sha256(key.encode()).hexdigest()[:15], 16) % self.SLOTS
        with self._guard:
            descriptor, held = self._file()
            held[slot] -= 1
            if held[slot] <= 0:
                del held[slot]
                fcntl.lockf(descriptor, fcntl.LOCK_UN, 1, slot)


class ResultCache:
    """Owns the workspace's `cache/` folder. `get`, `put` and the leases are safe across threads and processes."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._opened: diskcache.Cache | None = None
        self._leases = Leases(self.directory / "leases")

    @property
    def _cache(self) -> diskcache.Cache:
        """The diskcache, opened on first use: a run of steps that are never cached does not pay for it."""
        if self._opened is None:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.directory, 0o700)
            self._opened = diskcache.Cache(
                str(self.directory),
                eviction_policy="none",
                cull_limit=0,
                disk=JsonValueDisk,
                size_limit=2**62,
            )
        return self._opened

    def lease(self, key: str) -> bool:
        """Take the lease on making the request `key`; False while another process holds it (its answer will
        land in this cache, or the lease ends: released, or its holder gone)."""
        return self._leases.take(key)

    def release(self, key: str) -> None:
        self._leases.release(key)

    def get(self, key: str) -> dict[str, Any] | None:
        found = self._cache.get(key)
        return found if isinstance(found, dict) else None

    def put(self, key: str, result: dict[str, Any]) -> None:
        """Store a result the moment it arrives (Run Again overwrites)."""
        self._cache.set(key, result)

    def __contains__(self, key: str) -> bool:
        return key in self._cache

    def __len__(self) -> int:
        return len(self._cache)

    def close(self) -> None:
        if self._opened is not None:
            self._opened.close()
            self._opened = None
