import pytest
import torch

# The machine has 2 cores and tests often run beside other work: one thread is fastest and fair.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
