"""Shared test settings: a headless matplotlib backend, and a one-thread fixture for tiny training runs."""
import os

os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture
def one_thread():
    """Tiny models train faster on one thread (and don't fight other processes for cores); restored after."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
