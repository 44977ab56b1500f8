import pytest
import torch

# The machine has 2 cores and tests often run beside other work: one thread is fastest and fair.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    """The demo on the three tiny checkpoints, running for one test module: (demo, registry, url)."""
    from demo_helpers import make_checkpoints, running_demo

    folders = make_checkpoints(tmp_path_factory.mktemp("checkpoints"))
    # The frames + actions model first: it is the one the page opens with.
    with running_demo([folders["pusher-tiny"], folders["digits-tiny"], folders["uncond-tiny"]]) as running:
        yield running


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """The three tiny checkpoints (frames + actions, class, unconditional) of demo_helpers, for one module."""
    from demo_helpers import make_checkpoints

    return make_checkpoints(tmp_path_factory.mktemp("checkpoints"))


@pytest.fixture(scope="module")
def registry(folders):
    """The demo's model registry over those checkpoints (CPU)."""
    from demo.model_registry import ModelRegistry

    return ModelRegistry.from_paths([next(iter(folders.values())).parent], device="cpu")
