import os

import pytest
import torch

from lstmkit.paths import data_root

# Two cores are shared by everything on the CI machine; keep intra-op threads modest.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def shared_data():
    """Path of ../shared/data (or $LSTMKIT_DATA); skips the test with a reason when it is absent."""
    root = data_root()
    if root is None:
        pytest.skip("shared data folder not found: set LSTMKIT_DATA or place it at ../shared/data")
    return root


@pytest.fixture
def one_thread():
    """Runs the test on one torch thread (restored after)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
