"""Keep TensorFlow's native log lines off the terminal during training.

TensorFlow's C++ side logs through absl straight to file descriptor 2 ("oneDNN custom
operations are on", "failed call to cuInit", "oneDNN supports DT_INT64 only on platforms with
AVX-512"), some of it before any Python setting is read, and ``TF_CPP_MIN_LOG_LEVEL`` no longer
reaches those absl lines. So while TensorFlow is imported and runs, descriptor 2 goes to a
temporary file and Python's ``sys.stderr`` (progress bars, warnings, our logging) to a copy of
the real one; afterwards the captured lines that are not known noise are replayed to stderr, so
a real native error is never hidden.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import tempfile

# absl/TSL line prefixes: I/W/E/F, month-day, time... e.g. "I0000 00:00:1795261480.868352 12258 port.cc:153]"
_NATIVE_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:[\d.]+\s+\d+ [\w.]+:\d+\]")
_HARMLESS = re.compile(r"cuInit|cuda|CUDA|oneDNN|cpu_feature_guard|TensorRT|NUMA|port\.cc")
_ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"


def is_noise(line: str) -> bool:
    """TensorFlow's informational native lines, and its harmless 'errors' about GPUs and CPU features."""
    if line.startswith(_ABSL_PREAMBLE):
        return True
    if not _NATIVE_LINE.match(line):
        return False
    return line[0] in "IW" or bool(_HARMLESS.search(line))


@contextlib.contextmanager
def quiet_native_logs():
    """Capture fd 2 for the duration; Python-level stderr keeps going to the terminal."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        sys.stderr.flush()
        original_fd = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real descriptor (e.g. an embedded interpreter)
        yield
        return
    capture = tempfile.TemporaryFile(mode="w+b")
    python_stderr = sys.stderr
    # Only a sys.stderr that writes to descriptor 2 needs a way around the capture (a test
    # runner's in-memory stderr does not).
    swap = _writes_to_fd2(python_stderr)
    replacement = handlers = None
    if swap:
        replacement = io.TextIOWrapper(os.fdopen(os.dup(original_fd), "wb", buffering=0), write_through=True,
                                       encoding=getattr(python_stderr, "encoding", None) or "utf-8", errors="replace")
        handlers = [h for h in logging.getLogger().handlers
                    if isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) is python_stderr]
        sys.stderr = replacement
        for handler in handlers:
            handler.setStream(replacement)
    os.dup2(capture.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(original_fd, 2)
        os.close(original_fd)
        if swap:
            sys.stderr = python_stderr
            for handler in handlers:
                handler.setStream(python_stderr)
            replacement.close()
        capture.seek(0)
        kept = [line for line in capture.read().decode("utf-8", "replace").splitlines() if line and not is_noise(line)]
        capture.close()
        for line in kept:
            print(line, file=sys.stderr)


def _writes_to_fd2(stream) -> bool:
    try:
        return stream.fileno() == 2
    except (AttributeError, OSError, ValueError):
        return False
