"""The warm runner: one long-lived local process per UI (or `runsheet serve`) that has the engine and litellm
imported already, so a click runs in the time of its calls instead of a new process's start-up.

Measured on main before it existed: a Click to Run spawned `runsheet run`, which spent about 5 s importing litellm
and 1-3 s starting the CLI before its first call (9-13 s per click on a litellm column, 3.5 s on a direct one).

- `WarmRunner.start(workspace)` spawns the process (`main` below) as a child of the caller; the caller stops it by
  its PID (`stop`), and it stops by itself when its parent is gone (it watches its parent PID), so it never
  outlives the UI or the API server that started it.
- It listens on 127.0.0.1 (a free port) and writes a descriptor, `.warm/runner-<pid>.json` in the workspace
  folder (folder 0700, file 0600), with its port and a random secret: only a caller that can read the workspace
  folder can use it. A request without that secret is refused before anything runs. A descriptor whose process
  is gone is stale: it is ignored and removed.
- One request is one connection (a JSON line each way): the runner runs it as `runsheet run` would (the same
  `Campaign.run`, actor, trigger, selection and options: the same `runs` row, activity, credits and Stop), in a
  thread of its own, so clicks run side by side; it answers with progress lines and then the report. A caller
  that closes the connection stops its run (Ctrl-C in `runsheet run`, a UI that went away).
- `WarmRunner.submit` is the client: None when no runner is up for the workspace (or it cannot be reached), so
  the caller runs the request itself, as before.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.auth import current_user
from engine.errors import RunsheetError
from engine.run.reports import ExecutionEvent, RunOptions, RunProgress, RunReport
from engine.run.selection import RunSelection
from engine.workspace import Workspace

log = logging.getLogger(__name__)

FOLDER = ".warm"  # inside the workspace folder: descriptors of the runners up for it
PARENT_POLL_SECONDS = 0.5  # how soon a runner notices that its parent is gone
CONNECT_SECONDS = 2.0  # a runner that does not answer this fast is treated as down
STOP_GRACE_SECONDS = 10.0  # how long a stopping runner lets its runs wind down (Stop) before it exits


@dataclass(frozen=True)
class Descriptor:
    """Where a runner listens and the secret it asks for; written by the runner, read by its callers."""

    pid: int
    port: int
    secret: str
    parent: int
    workspace: str  # the folder it serves: a descriptor copied along with a workspace folder is not its runner

    @staticmethod
    def path(workspace: Path, pid: int) -> Path:
        return workspace / FOLDER / f"runner-{pid}.json"


@dataclass
class WarmResult:
    """How a request ended: the run's report and the cells of its scope still in error (by code), or `error`,
    the one line `runsheet run` prints for a request it refused (with `code`: 1 a user error, 2 an internal one)."""

    report: RunReport | None = None
    in_error: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    code: int = 0


class WarmCall:
    """One request accepted by a runner: read its progress and its result with `wait`; `cancel` stops it."""

    def __init__(self, sock: socket.socket, reader: Any, pid: int) -> None:
        self.pid = pid  # the runner's: the pid its run row carries
        self.run_id: int | None = None  # known from the first progress line
        self._sock = sock
        self._reader = reader

    def wait(self, on_progress: Callable[[RunProgress], None] | None = None) -> WarmResult:
        """Follow the run to its end; `on_progress` gets each progress line. A runner that went away mid-run
        gives an internal error (its run is marked interrupted at the next read, as any dead runner's)."""
        try:
            for message in self._messages():
                if "progress" in message:
                    progress = RunProgress(**message["progress"])
                    self.run_id = progress.run_id
                    if on_progress is not None:
                        on_progress(progress)
                elif "report" in message:
                    return WarmResult(_report_from_wire(message["report"]), dict(message.get("in_error") or {}))
                elif "error" in message:
                    return WarmResult(error=str(message["error"]), code=int(message.get("code", 2)))
        finally:
            self.cancel()
        return WarmResult(error="internal error: the warm runner went away during the run", code=2)

    def cancel(self) -> None:
        """Close the connection: a run still going is stopped (Stop: in-flight calls cancelled, nothing new)."""
        try:
            self._sock.close()
        except OSError:
            pass

    def _messages(self) -> Iterator[dict[str, Any]]:
        while True:
            try:
                line = self._reader.readline()
            except OSError:
                return
            if not line:
                return
            yield json.loads(line)


class WarmRunner:
    """A runner process this process started: `start` it, hand requests to it with `submit`, `stop` it."""

    def __init__(self, workspace: Path, process: subprocess.Popen[bytes]) -> None:
        self.workspace = workspace
        self.process = process

    @property
    def pid(self) -> int:
        return self.process.pid

    @classmethod
    def start(cls, workspace: str | Path) -> WarmRunner:
        """Spawn a runner for `workspace` as a child of this process (it imports the engine and litellm in the
        background: a request that comes sooner waits for them, and `submit` finds it once it listens)."""
        folder = Path(workspace).resolve()
        # -P: the caller's working folder is not put on the path (a folder of its own named `engine` would win)
        command = [sys.executable, "-P", "-c", "from engine.warm import main; main()", str(folder), str(os.getpid())]
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        return cls(folder, process)

    def ready(self, timeout: float = 30.0) -> bool:
        """Wait until the runner listens (its descriptor is written); False if it died or took too long."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if Descriptor.path(self.workspace, self.pid).exists():
                return True
            if self.process.poll() is not None:
                return False
            time.sleep(0.05)
        return False

    def stop(self, timeout: float = STOP_GRACE_SECONDS + 5) -> None:
        """Stop the runner by its PID (SIGTERM: its runs are stopped and it removes its descriptor), killing it
        if it has not ended within `timeout`."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        Descriptor.path(self.workspace, self.pid).unlink(missing_ok=True)

    @staticmethod
    def find(workspace: str | Path) -> Descriptor | None:
        """A runner up for `workspace` (its process alive), newest first; stale descriptors are removed."""
        folder = Path(workspace).resolve() / FOLDER
        found: list[tuple[float, Descriptor]] = []
        for path in folder.glob("runner-*.json") if folder.is_dir() else ():
            try:
                descriptor = Descriptor(**json.loads(path.read_text()))
                mtime = path.stat().st_mtime
            except (OSError, ValueError, TypeError):
                continue  # being written, or not ours
            if descriptor.workspace != str(folder.parent):
                continue
            if _alive(descriptor.pid):
                found.append((mtime, descriptor))
            else:
                path.unlink(missing_ok=True)
        return max(found, key=lambda item: item[0])[1] if found else None

    @staticmethod
    def submit(
        workspace: str | Path,
        campaign: str,
        selection: RunSelection,
        *,
        actor: str | None = None,
        trigger: str = "cli",
        max_credits: float | None = None,
        concurrency: int | None = None,
        in_error: bool = True,
    ) -> WarmCall | None:
        """Hand a run to the runner up for `workspace`: the call once the runner accepted it, or None when no
        runner is up, it cannot be reached, or it refused the request (the caller then runs it itself).
        `in_error`: whether the result counts the scope's cells left in error (what `runsheet run` prints)."""
        descriptor = WarmRunner.find(workspace)
        if descriptor is None:
            return None
        request = {
            "secret": descriptor.secret,
            "campaign": campaign,
            "selection": asdict(selection),
            "actor": actor or current_user(),
            "trigger": trigger,
            "max_credits": max_credits,
            "concurrency": concurrency,
            "in_error": in_error,
        }
        try:
            sock = socket.create_connection(("127.0.0.1", descriptor.port), timeout=CONNECT_SECONDS)
            reader = sock.makefile("rb")
            sock.sendall(json.dumps(request).encode() + b"\n")
            answer = json.loads(reader.readline() or b"{}")
        except (OSError, ValueError):
            log.info("warm runner %s for %s is unreachable", descriptor.pid, workspace)
            return None
        if not answer.get("accepted"):
            sock.close()
            log.warning("warm runner %s refused the request: %s", descriptor.pid, answer.get("refused"))
            return None
        sock.settimeout(None)
        return WarmCall(sock, reader, descriptor.pid)


def _alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, killed but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (not Linux): the signal check is all there is
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _report_to_wire(report: RunReport) -> dict[str, Any]:
    """What a caller prints of a report: its counts per column and outcome, status, message, spend."""
    counts = [[column, dict(outcomes)] for column, outcomes in report.counts().items()]
    fields = ("run_id", "status", "message", "credits", "tokens", "cache_hits", "credits_saved", "memo_hits")
    return {"counts": counts, **{name: getattr(report, name) for name in fields}}


def _report_from_wire(wire: dict[str, Any]) -> RunReport:
    """The report again, one event per column and outcome (so `counts`, `totals` and `ending` say the same)."""
    events = [
        ExecutionEvent(column, outcome, int(n), None)
        for column, outcomes in wire.pop("counts")
        for outcome, n in outcomes.items()
    ]
    return RunReport(events=events, **wire)


class _Server(socketserver.ThreadingTCPServer):
    """The runner's listener: one thread per request, each running its request to the end."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, workspace: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Request)
        self.workspace = workspace
        self.secret = secrets.token_urlsafe(32)
        self.workspaces: dict[str, Workspace] = {}  # one per actor, opened once
        self.stops: set[threading.Event] = set()  # the runs going, to stop when the runner stops
        self.lock = threading.Lock()

    def open(self, actor: str) -> Workspace:
        with self.lock:
            if actor not in self.workspaces:
                self.workspaces[actor] = Workspace(self.workspace, actor=actor)
            return self.workspaces[actor]


class _Request(socketserver.StreamRequestHandler):
    """One connection: check the secret, run the request as `runsheet run` does, answer with progress lines and
    the result. The connection closing before the end stops the run."""

    server: _Server

    def setup(self) -> None:
        super().setup()
        self.writing = threading.Lock()  # progress may be reported from another thread than the answer

    def handle(self) -> None:
        try:
            request = json.loads(self.rfile.readline(1 << 20) or b"{}")
        except ValueError:
            return
        if not hmac.compare_digest(str(request.get("secret", "")), self.server.secret):
            self._send({"refused": "wrong secret"})
            return
        self._send({"accepted": True})
        stop = threading.Event()
        with self.server.lock:
            self.server.stops.add(stop)
        threading.Thread(target=self._watch_caller, args=(stop,), daemon=True).start()
        try:
            self._send(self._run(request, stop))
        finally:
            with self.server.lock:
                self.server.stops.discard(stop)

    def _run(self, request: dict[str, Any], stop: threading.Event) -> dict[str, Any]:
        try:
            ws = self.server.open(str(request["actor"]))
            handle = ws.campaign(str(request["campaign"]), actor=ws.actor, trigger=str(request["trigger"]))
            wanted = dict(request["selection"])
            selection = RunSelection.of(wanted.pop("columns"), wanted.pop("rows"), **wanted)
            options = RunOptions(
                max_credits=request.get("max_credits"),
                concurrency=request.get("concurrency"),
                progress=lambda state: self._send({"progress": asdict(state)}),
                stop=stop,
            )
            report = handle.run(selection, options=options)
            in_error = handle.errors(selection) if request.get("in_error", True) else {}
        except RunsheetError as error:
            return {"error": f"error: {error}", "code": 1}
        except Exception as error:  # an engine bug: said in one line, as the CLI says it
            log.exception("warm run failed")
            return {"error": f"internal error: {type(error).__name__}: {error}", "code": 2}
        return {"report": _report_to_wire(report), "in_error": dict(in_error)}

    def _watch_caller(self, stop: threading.Event) -> None:
        """Stop the run when the caller closes the connection (it sends nothing after its request)."""
        try:
            self.connection.recv(1)
        except OSError:
            pass
        stop.set()

    def _send(self, message: dict[str, Any]) -> None:
        try:
            with self.writing:
                self.wfile.write(json.dumps(message).encode() + b"\n")
                self.wfile.flush()
        except OSError:
            pass  # the caller is gone: the watcher stops the run


def main() -> None:
    """The runner process: `python -c "from engine.warm import main; main()" WORKSPACE PARENT_PID`. Runs until
    SIGTERM/SIGINT or until its parent is gone; then stops its runs, removes its descriptor and exits."""
    workspace, parent = Path(sys.argv[1]), int(sys.argv[2])
    logging.basicConfig(level=logging.WARNING, format="warm runner: %(message)s")
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    server = _Server(workspace)
    threading.Thread(target=server.serve_forever, name="warm-listener", daemon=True).start()
    threading.Thread(target=_import_providers, name="warm-imports", daemon=True).start()
    descriptor = Descriptor(os.getpid(), int(server.server_address[1]), server.secret, parent, str(workspace))
    path = Descriptor.path(workspace, descriptor.pid)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    written = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(written, "w") as file:
        json.dump(asdict(descriptor), file)
    os.replace(path.with_suffix(".tmp"), path)  # callers never read half a descriptor
    try:
        while not stopping.wait(PARENT_POLL_SECONDS):
            if os.getppid() != parent:
                break  # the parent died (this process was handed to another one): no orphan runner
    finally:
        path.unlink(missing_ok=True)
        server.shutdown()
        server.server_close()
        with server.lock:
            for stop in server.stops:
                stop.set()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while server.stops and time.monotonic() < deadline:
            time.sleep(0.05)


def _import_providers() -> None:
    """What a first AI call would import (litellm: seconds), imported now so no click waits for it."""
    from engine.llm.litellm_transport import litellm_module

    litellm_module()
