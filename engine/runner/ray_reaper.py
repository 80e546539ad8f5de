"""Ends what an embedded Ray cluster leaves behind when its run dies without shutting it down (SIGKILL, OOM).

Ray's own fate-sharing ends most of such a cluster at once: the GCS server, the raylet and the helpers the run's
process started die with it (PR_SET_PDEATHSIG), and the workers with their raylet. The raylet's two agents
(DashboardAgent, RuntimeEnvAgent) notice that their raylet died, then try to report it to the dead GCS server and
wait out its 60 s timeout before exiting (measured on Ray 2.60: about 64 s). So each embedded cluster is watched
by this module run as a script of its own (it imports no Ray and no engine): it blocks on a pipe from the run's
process, and when that pipe closes with the run gone, ends the processes of the workspace's dead sessions.
`start_embedded` also reaps them before it starts a cluster, should the watcher itself have been killed.

A process belongs to a session when it holds a file inside that session's directory (each one's stdout and stderr
are its logs there); a session is dead when the process that started it (the pid its directory is named after)
is gone. A live session, another run's in the same workspace among them, is never touched, nor any process
outside the workspace's Ray temp dir.

Run as: python ray_reaper.py TEMP_DIR RUN_PID (stdin: the pipe from the run; see `watch`).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import psutil

SESSIONS = "session_2*"  # session_2026-12-08_02-31-09_324016_<pid of the process that started it>
GRACE_SECONDS = 1.0  # after SIGTERM, before SIGKILL (an agent waiting on a dead GCS ignores it)
ENDED = b"ended"  # what the run writes to the watcher's pipe when it shut its cluster down itself


def dead_sessions(temp: Path) -> list[Path]:
    """The session directories under `temp` whose starting process is gone."""
    return [session for session in sorted(temp.resolve().glob(SESSIONS)) if not _started_by_live(session)]


def leftovers(temp: Path) -> list[psutil.Process]:
    """This user's processes holding a file inside a dead session of `temp`."""
    dead = [str(session) + os.sep for session in dead_sessions(temp)]
    if not dead:
        return []
    found = []
    for process in psutil.process_iter(["uids"]):
        if process.pid == os.getpid() or process.info["uids"] is None or process.info["uids"].real != os.getuid():
            continue
        try:
            paths = [f.path for f in process.open_files()]
        except psutil.Error:
            continue
        if any(path.startswith(prefix) for path in paths for prefix in dead):
            found.append(process)
    return found


def reap(temp: Path) -> list[int]:
    """End the processes the dead sessions of `temp` left (SIGTERM, then SIGKILL after a grace); their pids."""
    found = leftovers(temp)
    for process in found:
        _signal(process, kill=False)
    _, alive = psutil.wait_procs(found, timeout=GRACE_SECONDS)
    for process in alive:
        _signal(process, kill=True)
    psutil.wait_procs(alive, timeout=GRACE_SECONDS)
    return [process.pid for process in found]


def _started_by_live(session: Path) -> bool:
    pid = session.name.rpartition("_")[2]
    if not pid.isdigit():
        return True  # not a name Ray gives: leave it alone
    try:
        starter = psutil.Process(int(pid))
        # a pid used again by a later process is not the session's starter
        return starter.status() != psutil.STATUS_ZOMBIE and starter.create_time() <= session.stat().st_mtime + 1
    except (psutil.NoSuchProcess, FileNotFoundError):
        return False
    except psutil.Error:
        return True


def _signal(process: psutil.Process, *, kill: bool) -> None:
    try:
        process.kill() if kill else process.terminate()
    except psutil.Error:
        pass


def watch(temp: Path, run_pid: int) -> None:
    """Wait for the run's pipe (stdin) to close. Closed after ENDED, the run shut its cluster down itself;
    closed without it, the run died: once it is gone, end what its cluster left."""
    if sys.stdin.buffer.read() == ENDED:
        return
    deadline = time.monotonic() + GRACE_SECONDS  # its files close a moment before it is gone
    while _running(run_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    reap(temp)


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


if __name__ == "__main__":
    watch(Path(sys.argv[1]), int(sys.argv[2]))
