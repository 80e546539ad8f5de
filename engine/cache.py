"""The result cache: paid answers on disk, keyed by exactly what produced them, shared by every campaign.

diskcache is configured for this job: no eviction (its default silently drops entries past 1 GiB), JSON on disk
(its default unpickles whatever the file holds), and a folder only the owner can read.
"""

from __future__ import annotations

import hashlib
import json
import os
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


class ResultCache:
    """Owns the workspace's `cache/` folder. `get` and `put` are safe across threads and processes."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._opened: diskcache.Cache | None = None

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
