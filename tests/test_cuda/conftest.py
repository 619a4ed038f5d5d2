"""Fixtures of the CUDA tests (pytest marker ``cuda``).

Every test that needs a GPU takes the ``cuda_device`` fixture, which skips
it with the reason printed by ``pytest -rs`` when torch sees no CUDA
device, so ``pytest -m cuda`` stays green on CPU machines.
"""
import pytest
import torch


def cuda_unavailable_reason() -> str:
    """Why the CUDA tests cannot run here (empty when they can)."""
    if torch.cuda.is_available():
        return ''
    if torch.version.cuda is None:
        build = f'torch {torch.__version__} is a CPU build'
    else:
        build = (f'torch {torch.__version__} (CUDA {torch.version.cuda}) '
                 'sees no CUDA device')
    return (f'CUDA is not available: {build}; run `pytest -m cuda` on a '
            'CUDA machine (README, "On a CUDA machine")')


@pytest.fixture(scope='session')
def cuda_device() -> torch.device:
    """The current CUDA device; skips the test without one."""
    reason = cuda_unavailable_reason()
    if reason:
        pytest.skip(reason)
    return torch.device('cuda', torch.cuda.current_device())


@pytest.fixture
def ieee_fp32(cuda_device):
    """float32 matmuls and convolutions in IEEE precision (no TF32) during
    the test, so CUDA and CPU differ only by summation order."""
    matmul = torch.backends.cuda.matmul.allow_tf32
    conv = torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    yield cuda_device
    torch.backends.cuda.matmul.allow_tf32 = matmul
    torch.backends.cudnn.allow_tf32 = conv
