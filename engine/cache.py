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


HOST = socket.gethostname()


def _holder_alive(host: str, pid: int) -> bool:
    """Whether the process holding a lease may still answer: always, for another host's (its expiry decides)."""
    if host != HOST:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Leases:
    """Leases on requests being made, one small file each in `cache/leases/` (created with O_EXCL, so exactly
    one process takes a free lease; a file costs a few system calls where an SQLite write costs a millisecond).
    A lease ends when released, when it expires, or when its holder's process is gone."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._made = False

    def _path(self, key: str) -> Path:
        if not self._made:
            self.directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.directory.mkdir(mode=0o700, exist_ok=True)
            self._made = True
        return self.directory / key

    def take(self, key: str, seconds: float) -> bool:
        """Take (or extend) this process's lease on `key` for `seconds`; False if another live process holds it."""
        path = self._path(key)
        mine = f"{HOST} {os.getpid()} {time.time() + seconds:.3f}"
        for _ in range(3):
            try:
                descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            except FileExistsError:
                held = self._read(path)
                if held is None:
                    continue  # released meanwhile: try again
                host, pid, until = held
                if (host, pid) == (HOST, os.getpid()):
                    path.write_text(mine)
                    return True
                if until > time.time() and _holder_alive(host, pid):
                    return False
                stale = path.with_name(f"{key}.stale.{os.getpid()}")
                try:
                    os.rename(path, stale)  # only one process moves a stale lease away
                except FileNotFoundError:
                    continue
                stale.unlink(missing_ok=True)
                continue
            try:
                os.write(descriptor, mine.encode())
            finally:
                os.close(descriptor)
            return True
        return False

    def release(self, key: str) -> None:
        """End this process's lease on `key` (its answer, if any, is in the cache by now). The holder renews its
        lease before every attempt and every wait, so it is still its own here: no need to read it first."""
        self._path(key).unlink(missing_ok=True)

    @staticmethod
    def _read(path: Path) -> tuple[str, int, float] | None:
        try:
            host, pid, until = path.read_text().split(" ")
            return host, int(pid), float(until)
        except FileNotFoundError:
            return None
        except ValueError:  # being written this instant: treat as held for now
            return "", -1, time.time() + 1.0


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

    def lease(self, key: str, seconds: float) -> bool:
        """Take (or extend) this process's lease on making the request `key` for `seconds`; False if another
        live process holds it (its answer will land in this cache)."""
        return self._leases.take(key, seconds)

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
