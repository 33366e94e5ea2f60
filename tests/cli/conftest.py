"""One torch thread for these tests: on a shared 2-core machine, two OpenMP threads competing
with other processes made small forward passes up to 100x slower (busy-waiting workers)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
