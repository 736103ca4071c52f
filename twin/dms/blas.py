"""BLAS on one thread for the DMS's linear algebra.

The DMS's matrices are small (a gain matrix of 35 states on CIGRE MV) or sparse; a
multithreaded BLAS (OpenBLAS starts its threads per call) spends more on waking its
threads than on the arithmetic, and on a machine whose cores are busy with the rest of
the twin it waits for them: a 35 × 35 inverse measured 14 ms threaded, < 0.1 ms on one
thread. :func:`single_threaded` limits BLAS for the duration of a ``with`` block.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

from threadpoolctl import ThreadpoolController


@functools.cache
def _controller() -> ThreadpoolController:
    # finding the loaded BLAS libraries costs ~0.4 ms: once per process
    return ThreadpoolController()


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """BLAS limited to one thread inside the block (restored afterwards)."""
    with _controller().limit(limits=1, user_api="blas"):
        yield
