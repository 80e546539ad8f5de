"""The Ray backend (`runsheet run --backend ray`; the optional `ray` extra): a run's calls are made on async worker
actors of a Ray cluster, everything else stays in the run's process.

What stays in the run's process, unchanged: the call pool itself (engine/runner/pool.py), so the result cache
(served from this node: workers never open it), leases, single flight (identical requests in one run sent once),
the budget (a call is reserved before it is shipped), the concurrency cap C (at most C calls shipped at once,
whatever the number of workers), Stop, and every result handed to the run's writer. What a worker does: one call's
attempts (engine/runner/pool.py's `make_attempts`: deadline, retry policy, the transports of engine/llm), waiting
before each on a rate-limiter actor that holds the per-model buckets for the whole cluster.

What is shipped is the call as its step kind prepared it (the request, its model, deadline and token estimate),
pickled by `pack` and nothing else: never a secret. A worker reads keys from its own node's environment when it
makes the call (engine/redaction.py's `read_secret`) and redacts them from what it sends back. A worker whose
engine code differs from the run's (a digest of the engine package's sources) is refused.

Without an address (`--ray-address` / RAY_ADDRESS) the run starts an embedded single-node cluster whose servers all
listen on 127.0.0.1, its temp dir inside the workspace (never ~/.ray), and shuts it down when it ends (never `ray
stop`, which ends every Ray process of the machine); should the run die first, a watcher process ends what the
cluster left (engine/runner/ray_reaper.py). A worker that dies mid-call has its call sent to another worker: the
provider may bill such a call twice, at most once per call in flight at the death.

A row-wise python step's batch (`map_rows`, at least `rowwise_min_rows` rows) is cut into shards, two per CPU of
the cluster, each computed by a Ray task: the task gets the step's function as the step prepared it (its
reference, the folder the run imported its module from, the digest of that module's source) and its slice of the
inputs, and sends back the values. Any shard without values (the function raised, returned the wrong length, the
worker's copy of the module differs, the task died) sends the whole batch back to the run's process, which
computes it as one call, as locally: a failure fails the same cells with the same message on either backend.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import os
import secrets
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import RunsheetError
from engine.llm.types import ProviderFailure
from engine.redaction import redact
from engine.runner import ray_reaper
from engine.runner.backend import DEFAULT_ROWWISE_MIN_ROWS, BackendName, PoolSpec, RowFunction, join_shards
from engine.runner.calls import Answer, PaidCall
from engine.runner.limits import RateLimits
from engine.runner.policy import RetryPolicy
from engine.runner.pool import CallPool, Spent, make_attempts
from engine.types import ErrorCode

if TYPE_CHECKING:
    import polars as pl

try:
    import ray
    from ray import cloudpickle
    from ray._private import ray_constants
    from ray.exceptions import ActorUnavailableError, RayActorError, RayError, RayTaskError
except ImportError:  # the optional extra is missing: RayBackend says how to install it
    ray = None  # type: ignore[assignment]

log = logging.getLogger(__name__)
ENGINE_DIR = Path(__file__).resolve().parents[1]
RESUBMITS = 8  # workers a call may be sent to when the one making it dies
OBJECT_STORE_BYTES = 100 * 1024 * 1024  # answers are small; Ray's default takes 30% of the machine's memory
AUTH_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_TOKEN")
QUIET: dict[str, Any] = {"log_to_driver": False, "configure_logging": False, "include_dashboard": False}
SHORT_TEMP = 45  # characters: a session dir's socket under a longer temp dir passes 107 bytes
LOOPBACK = "127.0.0.1"
SHARDS_PER_CPU = 2  # a row-wise batch's shards: a slow shard (a busy CPU, heavier rows) leaves others to take up
SHARD_RETRIES = 2  # times a shard's task is tried again when its worker dies, before the run computes the batch
START_HINT = "install the extra (`pip install -e .[ray]`, ray 2.60) or run with --backend local"


@dataclass(frozen=True)
class Embedded:
    """What starting an embedded cluster changed, to put back when it ends: the token variables as they were, the
    short link to its temp dir (None: the temp dir's own path was short enough), and the process that ends what the
    cluster leaves should this one die without shutting it down (engine/runner/ray_reaper.py)."""

    before: dict[str, str]
    link: Path | None
    watcher: subprocess.Popen[bytes]


def start_embedded(temp: Path, cpus: int) -> Embedded:
    """Start a single-node cluster for this process, its temp dir and its token inside `temp` (Ray's defaults are
    /tmp/ray and ~/.ray/auth_token)."""
    temp = temp.resolve()
    temp.mkdir(mode=0o700, parents=True, exist_ok=True)
    ray_reaper.reap(temp)  # a run of this workspace died, and its watcher with it
    watcher = subprocess.Popen(
        [sys.executable, ray_reaper.__file__, str(temp), str(os.getpid())],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # outlives this process, and a Ctrl-C sent to its group
    )
    token = temp / "auth_token"
    if not token.exists():
        token.touch(mode=0o600)
        token.write_text(secrets.token_hex(32))
    before = {name: os.environ[name] for name in AUTH_ENV if name in os.environ}
    # Ray reads its token's place from the environment (so do the cluster's processes, started from this one);
    # left unset, RAY_AUTH_MODE turns to token for a new cluster (ray.init does that, and reloads its config)
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(token)
    os.environ.pop("RAY_AUTH_TOKEN", None)
    # Ray keeps the token it first read for the life of the process: a second embedded cluster (another workspace,
    # or this one again) would be asked for the first one's (ray 2.60 has no public way to forget it)
    from ray._raylet import AuthenticationTokenLoader  # type: ignore[attr-defined]

    AuthenticationTokenLoader.instance().reset_cache()
    link = None
    if len(str(temp)) > SHORT_TEMP:  # its sockets' paths would pass the 107 bytes a unix socket's path may have
        link = Path(tempfile.gettempdir()) / f"runsheet-ray-{hashlib.sha256(str(temp).encode()).hexdigest()[:12]}"
        link.unlink(missing_ok=True)
        link.symlink_to(temp, target_is_directory=True)
    # Ray turns a node address of 127.0.0.1 into the machine's own, and its servers listen on the node's address;
    # it keeps a node on loopback only where clusters are off (its RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER, read when
    # ray is imported): off while this cluster starts, so every server of it listens on 127.0.0.1
    clusters = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        ray.init(
            address="local",  # a new cluster of our own, even when RAY_ADDRESS names another
            num_cpus=cpus,
            object_store_memory=OBJECT_STORE_BYTES,
            _node_ip_address=LOOPBACK,
            _temp_dir=str(link or temp),
            **QUIET,
        )
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = clusters
    started = Embedded(before, link, watcher)
    if ray.util.get_node_ip_address() != LOOPBACK:
        stop_embedded(started)
        raise RunsheetError(
            "the embedded Ray cluster would listen beyond 127.0.0.1: not started",
            hint="run with --backend local, or join a cluster with --ray-address",
        )
    return started


def stop_embedded(started: Embedded) -> None:
    """Shut down the cluster `start_embedded` started (its processes only, never `ray stop`), and put back what
    starting it changed."""
    ray.shutdown()
    for name in AUTH_ENV:
        os.environ.pop(name, None)
    os.environ.update(started.before)
    if started.link is not None:
        started.link.unlink(missing_ok=True)
    assert started.watcher.stdin is not None
    try:
        started.watcher.stdin.write(ray_reaper.ENDED)
        started.watcher.stdin.close()
    except OSError:  # the watcher is gone: nothing to tell it
        pass
    try:
        started.watcher.wait(timeout=10)
    except subprocess.TimeoutExpired:  # told the run ended, it exits by itself
        log.warning("the Ray cluster's watcher (pid %d) is slow to exit", started.watcher.pid)


@cache
def engine_digest() -> str:
    """A digest of the engine package's sources: workers must run the same engine code as the run."""
    digest = hashlib.sha256()
    for path in sorted(ENGINE_DIR.rglob("*.py")):
        digest.update(path.relative_to(ENGINE_DIR).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@dataclass(frozen=True)
class RemoteCall:
    """What a worker needs to make one call: the prepared attempt (its request names its key's variable, never
    the key), the rate-limit bucket, the token estimate and the deadline."""

    attempt: Any  # the PaidCall's attempt: an async callable returning an Answer
    model: str
    est_tokens: int
    deadline: float


@dataclass(frozen=True)
class RemoteOutcome:
    """What a worker sends back: the answer, or the failure's code and message, and what the attempts spent."""

    answer: Answer | None
    code: ErrorCode | None
    message: str
    attempts: int
    tokens: int
    provider_cost: float | None


def pack(shipped: object) -> bytes:
    """Everything that travels between the run and its workers goes through here (one place to check for secrets)."""
    return bytes(cloudpickle.dumps(shipped))


def unpack(payload: bytes) -> Any:
    return cloudpickle.loads(payload)


class ClusterLimits:
    """The rate limits as a worker sees them: models with limits wait on the cluster's rate-limiter actor."""

    def __init__(self, limiter: Any, limited: frozenset[str]) -> None:
        self.limiter, self.limited = limiter, limited

    async def acquire(self, model: str, tokens: int) -> None:
        if model in self.limited:
            await self.limiter.acquire.remote(model, tokens)


class RateLimiter:
    """The per-model token buckets of every worker of a run (a Ray actor): one global rate per model."""

    def __init__(self, limits: dict[str, tuple[float | None, float | None]]) -> None:
        self.limits = RateLimits(limits)

    async def acquire(self, model: str, tokens: int) -> None:
        await self.limits.acquire(model, tokens)


class CallWorker:
    """Makes the attempts of the calls shipped to it (a Ray async actor, many calls at once)."""

    def __init__(self, expected: str, limiter: Any, limited: frozenset[str], policy: RetryPolicy) -> None:
        self.digest = engine_digest()
        self.expected = expected
        self.limits = ClusterLimits(limiter, limited)
        self.policy = policy

    async def ready(self) -> tuple[str, int]:
        """This worker's engine digest and process id (the handshake)."""
        return self.digest, os.getpid()

    async def make(self, payload: bytes) -> bytes:
        if self.digest != self.expected:
            raise VersionRefused(self.digest, self.expected)
        call: RemoteCall = unpack(payload)
        spent = Spent()
        outcome = await make_attempts(
            call.attempt, call.model, call.est_tokens, call.deadline, spent, self.limits, self.policy
        )
        answer = (
            Answer(
                redact(outcome.value),
                outcome.status,
                outcome.prompt_tokens,
                outcome.completion_tokens,
                outcome.provider_cost,
            )
            if isinstance(outcome, Answer)
            else None
        )
        failure = outcome if isinstance(outcome, ProviderFailure) else None
        return pack(
            RemoteOutcome(
                answer,
                None if failure is None else failure.code,
                "" if failure is None else str(redact(failure.message)),
                spent.attempts,
                spent.tokens,
                spent.provider_cost,
            )
        )


class VersionRefused(RunsheetError):
    """A Ray worker runs different engine code from the run's."""

    def __init__(self, worker: str, run: str) -> None:
        self.worker, self.run = worker, run
        super().__init__(
            f"a Ray worker runs different engine code (digest {worker[:12]}) from this run's ({run[:12]}): refused",
            hint="install the same Runsheet version on every node of the cluster",
        )

    def __reduce__(self) -> tuple[type[VersionRefused], tuple[str, str]]:
        return (VersionRefused, (self.worker, self.run))  # sent back from the worker that refused


def compute_shard(expected: str, payload: bytes) -> bytes:
    """A Ray task: a row-wise function's values over one shard of a batch (packed: the function, the shard's
    inputs), or None when it gave none there."""
    if engine_digest() != expected:
        raise VersionRefused(engine_digest(), expected)
    function, frame = unpack(payload)
    return pack(function(frame))


def shard_bounds(rows: int, cpus: int) -> list[tuple[int, int]]:
    """(offset, length) of each shard of a batch of `rows` rows: SHARDS_PER_CPU per CPU, of equal sizes."""
    count = max(1, min(rows, cpus * SHARDS_PER_CPU))
    size = -(-rows // count)
    return [(start, min(size, rows - start)) for start in range(0, rows, size)]


class RayPool(CallPool):
    """The call pool of the run's process, its portable calls' attempts made on the cluster's workers."""

    def __init__(self, spec: PoolSpec, workers: list[Any]) -> None:
        super().__init__(
            concurrency=spec.concurrency,
            budget=spec.budget,
            on_result=spec.on_result,
            stop=spec.stop,
            cache=spec.cache,
            limits=RateLimits(spec.rate_limits),  # for the calls made here; workers wait on the rate-limiter actor
            policy=spec.policy,
        )
        self.workers = workers
        self._next = itertools.cycle(range(len(workers)))

    async def _make(self, call: PaidCall, spent: Spent) -> Answer | ProviderFailure:
        if not call.portable:  # http and export steps (an outbox, the address guard): made here, as locally
            return await super()._make(call, spent)
        payload = pack(RemoteCall(call.attempt, call.model, call.est_tokens, call.deadline))
        for _ in range(RESUBMITS):
            ref = self.workers[next(self._next)].make.remote(payload)
            try:
                reply: RemoteOutcome = unpack(await ref)
            except asyncio.CancelledError:
                ray.cancel(ref)  # Stop: the worker's call is cancelled too
                raise
            except (RayActorError, ActorUnavailableError):
                log.warning("a Ray worker died making a %s call: sending it to another", call.model)
                continue
            except RayTaskError as err:
                if isinstance(err.cause, VersionRefused):
                    raise err.cause from None
                raise
            spent.attempts += reply.attempts
            spent.add(reply.tokens, reply.provider_cost)
            if reply.answer is not None:
                return reply.answer
            assert reply.code is not None
            return ProviderFailure(reply.code, reply.message, retryable=False)
        message = f"the Ray workers making this call died {RESUBMITS} times"
        return ProviderFailure(ErrorCode.PROVIDER_ERROR, message, retryable=False)


class RayBackend:
    """A run's Ray cluster connection and actors: joined (`address`) or embedded, started on the first pool of at
    least `min_cells` cells and ended by `close`."""

    name: BackendName = "ray"

    def __init__(
        self,
        workspace_dir: Path,
        *,
        address: str | None = None,
        min_cells: int = 0,
        rowwise_min_rows: int = DEFAULT_ROWWISE_MIN_ROWS,
    ) -> None:
        if ray is None:
            raise RunsheetError("the Ray backend needs the `ray` package, which is not installed", hint=START_HINT)
        self.workspace_dir, self.min_cells, self.rowwise_min_rows = workspace_dir, min_cells, rowwise_min_rows
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.workers: list[Any] = []
        self.limiter: Any = None
        self._connected = False  # this backend called ray.init (and so ray.shutdown)
        self._embedded: Embedded | None = None  # what starting an embedded cluster changed

    def pool(self, spec: PoolSpec, cells: int) -> CallPool:
        if cells < self.min_cells:
            return spec.local_pool()
        if not self.workers:
            self._start(spec)
        return RayPool(spec, self.workers)

    def map_rows(self, function: RowFunction, frame: pl.DataFrame) -> pl.Series | None:
        if frame.height < max(self.min_cells, self.rowwise_min_rows, 2):
            return None
        self.connect()
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        task = ray.remote(compute_shard).options(num_cpus=1, max_retries=SHARD_RETRIES)
        refs = [
            task.remote(engine_digest(), pack((function, frame.slice(offset, length))))
            for offset, length in shard_bounds(frame.height, cpus)
        ]
        values: dict[Any, pl.Series | None] = {}
        waiting = list(refs)
        try:
            while waiting:
                ready, waiting = ray.wait(waiting, num_returns=1)
                values[ready[0]] = unpack(ray.get(ready[0]))
                if values[ready[0]] is None:  # the batch is the run's to compute: the other shards' work is moot
                    break
        except RayTaskError as err:
            if isinstance(err.cause, VersionRefused):
                raise err.cause from None
            log.warning("a row-wise shard failed on Ray (%s): the run computes the batch itself", err)
            return None
        except RayError as err:  # its worker died more than SHARD_RETRIES times
            log.warning("a row-wise shard was lost on Ray (%s): the run computes the batch itself", err)
            return None
        finally:
            for ref in waiting:
                ray.cancel(ref)
        return join_shards([values.get(ref) for ref in refs])

    def connect(self) -> None:
        if not ray.is_initialized():
            self._connect()

    def _start(self, spec: PoolSpec) -> None:
        self.connect()
        limited = frozenset(model for model, (rpm, tpm) in spec.rate_limits.items() if rpm or tpm)
        self.limiter = ray.remote(num_cpus=0)(RateLimiter).remote(spec.rate_limits)
        count = max(1, int(ray.cluster_resources().get("CPU", 1)))
        worker = ray.remote(CallWorker).options(num_cpus=1, max_restarts=-1, max_concurrency=max(spec.concurrency, 1))
        self.workers = [worker.remote(engine_digest(), self.limiter, limited, spec.policy) for _ in range(count)]
        for digest, _ in ray.get([w.ready.remote() for w in self.workers]):
            if digest != engine_digest():
                self.close()
                raise VersionRefused(digest, engine_digest())

    def _connect(self) -> None:
        if self.address:
            ray.init(address=self.address, **QUIET)
        else:
            self._embedded = start_embedded(self.workspace_dir / "ray", os.cpu_count() or 1)
        self._connected = True

    def close(self) -> None:
        """End this run's actors (nothing reaches a provider through them after the run), and the cluster or the
        connection this backend started."""
        for actor in [*self.workers, self.limiter]:
            if actor is not None:
                ray.kill(actor, no_restart=True)
        self.workers, self.limiter = [], None
        if self._connected:
            if self._embedded is None:
                ray.shutdown()  # our connection only: the cluster goes on
            else:
                stop_embedded(self._embedded)
                self._embedded = None
            self._connected = False
