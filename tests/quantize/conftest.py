import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Step-by-step recurrent loops run fastest (and steadiest) on one thread; restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
