"""Starting and stopping the cluster's processes, tracked by PID.

A PID alone can be reused after its process dies, so each record also keeps the
process's start time (field 22 of /proc/<pid>/stat): a PID whose start time differs is
someone else's process and is never signalled. pause()/resume() freeze and thaw a
process (SIGSTOP/SIGCONT), the way fault tests cut an operator replica off.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG = 1


@dataclass
class ProcRecord:
    name: str
    pid: int
    start_time: int  # clock ticks since boot, from /proc/<pid>/stat
    argv: list[str]
    log: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProcRecord:
        return cls(**data)


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time) of a PID, or None if there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may contain spaces and parentheses: split after it.
    rest = raw[raw.rindex(")") + 2 :].split()
    return rest[0], int(rest[19])


def is_alive(rec: ProcRecord) -> bool:
    """The recorded process still runs (not a zombie, not a reused PID)."""
    st = _stat(rec.pid)
    return st is not None and st[1] == rec.start_time and st[0] not in ("Z", "X")


def rss_kib(rec: ProcRecord) -> int:
    """Resident memory of a live recorded process in KiB (0 if gone)."""
    if not is_alive(rec):
        return 0
    try:
        for line in Path(f"/proc/{rec.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except FileNotFoundError:
        return 0
    return 0


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def start(
    name: str,
    argv: list[str],
    log_path: Path,
    env: dict[str, str] | None = None,
    die_with_parent: bool = False,
) -> tuple[ProcRecord, subprocess.Popen[bytes]]:
    """Starts argv in its own session with stdout+stderr appended to log_path.

    die_with_parent: the kernel sends SIGKILL to the process when the process that
    started it dies (a test run killed with SIGKILL leaves nothing running; SIGTERM
    is not enough: kube-apiserver waits forever for an etcd that went at the same time).
    The kernel ties it to the forking *thread*: start from a thread that lives as long.
    The CLI's `up` leaves it off: there the cluster outlives the command.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        log.write(f"==> {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent if die_with_parent else None,  # noqa: PLW1509
        )
    st = None
    for _ in range(100):  # /proc entry appears right after fork; be patient under load
        st = _stat(proc.pid)
        if st is not None:
            break
        time.sleep(0.01)
    start_time = st[1] if st else -1
    return ProcRecord(name, proc.pid, start_time, argv, str(log_path)), proc


def stop(rec: ProcRecord, popen: subprocess.Popen[bytes] | None = None, grace: float = 10) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds (grace <= 0: SIGKILL only, as a crash
    would); only if the PID is still ours."""
    if grace > 0 and is_alive(rec):
        with contextlib.suppress(ProcessLookupError):
            os.kill(rec.pid, signal.SIGTERM)
            if is_paused(rec):  # a stopped process handles SIGTERM only once continued
                os.kill(rec.pid, signal.SIGCONT)
        deadline = time.monotonic() + grace
        while is_alive(rec) and time.monotonic() < deadline:
            if popen is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    popen.wait(timeout=0.05)
            else:
                time.sleep(0.05)
    if is_alive(rec):
        with contextlib.suppress(ProcessLookupError):
            os.kill(rec.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while is_alive(rec) and time.monotonic() < deadline:
            if popen is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    popen.wait(timeout=0.05)
            else:
                time.sleep(0.05)
    if popen is not None:  # reap our own child so it does not linger as a zombie
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=5)


def kill(rec: ProcRecord, popen: subprocess.Popen[bytes] | None = None) -> None:
    """SIGKILL at once (a crash: no graceful shutdown); only if the PID is still ours."""
    stop(rec, popen, grace=0)


def state(rec: ProcRecord) -> str | None:
    """The recorded process's state letter from /proc/<pid>/stat (R, S, D, T, ...), or
    None if it is gone or the PID now belongs to another process."""
    st = _stat(rec.pid)
    if st is None or st[1] != rec.start_time:
        return None
    return st[0]


def is_paused(rec: ProcRecord) -> bool:
    """Stopped by a signal (SIGSTOP): alive, but runs no code and answers nothing."""
    return state(rec) == "T"


def pause(rec: ProcRecord, *, group: bool = False, timeout: float = 5) -> None:
    """SIGSTOP: the process freezes mid-flight, its sockets stay open and its leases go
    unrenewed, as a replica cut off by a network partition would look to the API server.
    group=True stops its whole process group too (its children; processes started by
    start() lead their own). Returns once the kernel reports it stopped."""
    _signal(rec, signal.SIGSTOP, group)
    _wait_state(rec, lambda s: s == "T", "stopped", timeout)


def resume(rec: ProcRecord, *, group: bool = False, timeout: float = 5) -> None:
    """SIGCONT: undoes pause(); the process carries on from where it was frozen."""
    _signal(rec, signal.SIGCONT, group)
    _wait_state(rec, lambda s: s != "T", "running again", timeout)


def _signal(rec: ProcRecord, sig: signal.Signals, group: bool) -> None:
    if not is_alive(rec):
        raise ProcessLookupError(f"{rec.name} (pid {rec.pid}) is not running")
    if group:
        if os.getpgid(rec.pid) != rec.pid:
            raise ValueError(f"{rec.name} (pid {rec.pid}) does not lead a process group")
        os.killpg(rec.pid, sig)
    else:
        os.kill(rec.pid, sig)


def _wait_state(rec: ProcRecord, ok: Callable[[str], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        st = state(rec)
        if st is None:
            raise ProcessLookupError(f"{rec.name} (pid {rec.pid}) exited")
        if ok(st):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{rec.name} (pid {rec.pid}) not {what} after {timeout}s: {st}")
        time.sleep(0.01)


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 right now, chosen by the kernel (all distinct)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def all_cmdlines() -> list[str]:
    """The command lines of every process we can see (NULs as spaces)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                out.append(
                    (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                )
            except OSError:
                continue
    return out


def log_tail(path: str | Path, lines: int = 25) -> str:
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text[-lines:])
