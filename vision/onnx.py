"""onnxruntime, imported once, without the litter its import leaves.

Importing onnxruntime makes its telemetry library create an empty `mat-debug-<pid>.log` in the
temporary directory, one per process, never removed. We remove it right after the import when
it is empty (a non-empty one holds something worth keeping).
"""

from __future__ import annotations

import os
import tempfile


def onnxruntime():
    import onnxruntime as ort

    litter = os.path.join(tempfile.gettempdir(), f"mat-debug-{os.getpid()}.log")
    try:
        if os.path.getsize(litter) == 0:
            os.remove(litter)
    except OSError:
        pass
    return ort
