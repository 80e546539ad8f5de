"""The result cache: paid answers on disk, keyed by exactly what produced them, shared by every campaign.

diskcache is configured for this job: no eviction (its default silently drops entries past 1 GiB), JSON on disk
(its default unpickles whatever the file holds), and a folder only the owner can read.

Beside the answers it keeps leases on requests being made (`cache/leases/`), so that two processes asking the
same thing at once send it once: the first takes the lease and calls, the second waits for the answer to land
in the cache (or for the lease to end: released, expired, or its holder's process gone).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

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


def _open(directory: Path) -> diskcache.Cache:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    return diskcache.Cache(
        str(directory), eviction_policy="none", cull_limit=0, disk=JsonValueDisk, size_limit=2**62
    )


HOST = socket.gethostname()


def _holder_alive(lease: dict[str, Any]) -> bool:
    """Whether the process holding a lease may still answer: always, for another host's (its expiry decides)."""
    if lease.get("host") != HOST:
        return True
    try:
        os.kill(int(lease["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, KeyError, ValueError, TypeError):
        return True
    return True


class ResultCache:
    """Owns the workspace's `cache/` folder. `get`, `put` and the leases are safe across threads and processes."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._opened: diskcache.Cache | None = None
        self._leases: diskcache.Cache | None = None

    @property
    def _cache(self) -> diskcache.Cache:
        """The diskcache, opened on first use: a run of steps that are never cached does not pay for it."""
        if self._opened is None:
            self._opened = _open(self.directory)
        return self._opened

    @property
    def _lease_store(self) -> diskcache.Cache:
        if self._leases is None:
            self._leases = _open(self.directory / "leases")
        return self._leases

    def lease(self, key: str, seconds: float) -> bool:
        """Take (or extend) this process's lease on making the request `key` for `seconds`; False if another
        live process holds it."""
        store = self._lease_store
        mine = {"pid": os.getpid(), "host": HOST, "until": time.time() + seconds}
        with store.transact(retry=True):
            held = store.get(key, retry=True)
            if isinstance(held, dict) and (held.get("pid"), held.get("host")) != (mine["pid"], HOST):
                if float(held.get("until", 0)) > time.time() and _holder_alive(held):
                    return False
            store.set(key, mine, expire=seconds, retry=True)
        return True

    def leased_elsewhere(self, key: str) -> bool:
        """Whether another live process holds a lease on `key` now."""
        held = self._lease_store.get(key, retry=True)
        if not isinstance(held, dict) or float(held.get("until", 0)) <= time.time():
            return False
        return (held.get("pid"), held.get("host")) != (os.getpid(), HOST) and _holder_alive(held)

    def release(self, key: str) -> None:
        """End this process's lease on `key` (the answer, if any, is in the cache by now)."""
        store = self._lease_store
        with store.transact(retry=True):
            held = store.get(key, retry=True)
            if isinstance(held, dict) and (held.get("pid"), held.get("host")) == (os.getpid(), HOST):
                store.delete(key, retry=True)

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
        for opened in (self._opened, self._leases):
            if opened is not None:
                opened.close()
        self._opened = self._leases = None
