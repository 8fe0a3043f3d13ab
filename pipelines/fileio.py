"""Careful reading and writing of the files a user points us at.

- Reading: only regular files, with a size limit, and (for photos) a timeout, so a FIFO, a
  device or a stalled network mount cannot hang a command.
- Writing: check that an output directory takes a file before the work starts, and turn the
  operating system's refusals (full disk, read-only file system, no permission) into one line
  that names the path and the cause.
- Interruption: SIGTERM becomes an exception like Ctrl-C's, so ``finally`` blocks remove
  temporaries; a short critical section can hold signals back until it is done.
- Fault points: named places where a test can make the process stop itself (see
  ``arm_fault_point``), so kill tests hit exact moments without sleeps.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from pipelines.errors import InputError

# The causes a user can act on, as the operating system words them ("No space left on device").
_STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO, errno.EFBIG)
STORAGE_CAUSES = tuple(os.strerror(code) for code in _STORAGE_ERRNOS)


class UnwritableOutput(InputError):
    """An output path (a file, a directory, the warehouse) that cannot be written."""


class Terminated(BaseException):
    """SIGTERM, raised like KeyboardInterrupt so that cleanup code runs."""


# ---------------------------------------------------------------- reading


def require_regular_file(path: Path, what: str) -> Path:
    """``path`` if it is a regular file (links followed); else a message saying what it is."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InputError(f"{path}: file not found (expected the {what})") from None
    except OSError as e:
        raise InputError(f"{path}: cannot be read ({e.strerror}); expected the {what}") from e
    if stat.S_ISDIR(mode):
        raise InputError(f"{path}: is a directory; expected the {what} (a file)")
    if not stat.S_ISREG(mode):
        raise InputError(f"{path}: is not a regular file (a pipe, socket or device); expected the {what}")
    return path


def read_regular_file(path: Path, *, max_bytes: int, timeout_s: float | None = None, what: str = "file") -> bytes:
    """The bytes of a regular file of at most ``max_bytes``, read within ``timeout_s`` seconds.

    The file is opened non-blocking and checked with fstat on the open descriptor, so a FIFO is
    refused without waiting for a writer. A read that does not finish in time (a stalled
    network mount) is abandoned: its thread is a daemon and the command goes on.
    """
    if timeout_s is None:
        return _read_checked(Path(path), max_bytes, what)
    result: dict = {}

    def work():
        try:
            result["data"] = _read_checked(Path(path), max_bytes, what)
        except BaseException as e:  # handed to the caller's thread
            result["error"] = e

    thread = threading.Thread(target=work, name=f"read {Path(path).name}", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise InputError(f"{path}: reading took longer than {timeout_s:g} s (a stalled network drive?); skipped")
    if "error" in result:
        raise result["error"]
    return result["data"]


def _read_checked(path: Path, max_bytes: int, what: str) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory; expected the {what} (a file)") from None
    except OSError as e:
        raise InputError(f"{path}: cannot be read ({e.strerror}); expected the {what}") from e
    with os.fdopen(fd, "rb", buffering=0) as f:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise InputError(f"{path}: is a directory; expected the {what} (a file)")
        if not stat.S_ISREG(info.st_mode):
            raise InputError(f"{path}: is not a regular file (a pipe, socket or device); expected the {what}")
        if info.st_size > max_bytes:
            raise InputError(f"{path}: {info.st_size:,} bytes; expected the {what} to be at most {max_bytes:,} bytes")
        os.set_blocking(fd, True)
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:  # grew while we read it
        raise InputError(f"{path}: more than {max_bytes:,} bytes; expected the {what} to be at most {max_bytes:,} bytes")
    return data


# ---------------------------------------------------------------- writing


def storage_cause(error: BaseException) -> str | None:
    """The operating system's reason ("No space left on device") behind ``error`` or the errors
    it was raised from or while handling; None when the failure is not about storage."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in _STORAGE_ERRNOS:
            return os.strerror(error.errno)
        for cause in STORAGE_CAUSES:  # DuckDB and pyarrow put the OS's words in their own errors
            if cause in str(error):
                return cause
        error = error.__cause__ or error.__context__
    return None


@contextlib.contextmanager
def storage_errors(path: Path) -> Iterator[None]:
    """Turns a failure caused by the storage under ``path`` into one line: 'PATH: CAUSE'."""
    try:
        yield
    except InputError:
        raise
    except Exception as e:
        cause = storage_cause(e)
        if cause is None:
            raise
        raise UnwritableOutput(f"{path}: {cause}") from e


def check_writable_dir(directory: Path, what: str, *, probe_bytes: int = 64 * 1024) -> None:
    """Creates ``directory`` if needed and writes (then removes) a small probe file in it, so a
    read-only, forbidden or full place is reported before any work is done."""
    directory = Path(directory)
    with storage_errors(directory):
        if directory.exists() and not directory.is_dir():
            raise UnwritableOutput(f"{directory}: is a file; expected a directory for the {what}")
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".recsys-probe-", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(b"\0" * probe_bytes)
                f.flush()
                os.fsync(f.fileno())
        finally:
            os.unlink(probe)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


# ---------------------------------------------------------------- signals


@contextlib.contextmanager
def sigterm_as_exception() -> Iterator[None]:
    """While inside, SIGTERM raises Terminated (as Ctrl-C raises KeyboardInterrupt)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated("terminated by SIGTERM")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block is done (only SIGKILL can split it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


# ---------------------------------------------------------------- fault points (for tests)

_armed: dict[str, signal.Signals] = {}


def arm_fault_point(spec: str | None) -> None:
    """``NAME`` (SIGKILL at that point) or ``NAME:TERM`` / ``NAME:INT``; cli.py passes the
    environment variable RECSYS_FAULT_POINT here. Used by the fault-injection tests."""
    _armed.clear()
    if not spec:
        return
    name, _, how = spec.partition(":")
    _armed[name] = {"": signal.SIGKILL, "KILL": signal.SIGKILL, "TERM": signal.SIGTERM, "INT": signal.SIGINT}[how.upper()]


def fault_point(name: str) -> None:
    """The process signals itself here when a test armed ``name``."""
    how = _armed.get(name)
    if how is not None:
        os.kill(os.getpid(), how)
