"""Checkpoints of the mmengine Runner load on torch >= 2.6 (weights_only)."""
import os
import pickle

import pytest
import torch
from mmengine.runner.checkpoint import _load_checkpoint

import ddml  # noqa: F401  (registers the safe globals and the loader)
from ddml.compat import CheckpointRefusedError, load_local_checkpoint


class _RunsCode:
    """Unpickling this would call ``os.system``."""

    def __reduce__(self):
        return (os.system, ('echo unpickled-code-ran',))


class _EscapesThroughGetattr:
    """``getattr(HistoryBuffer, '__init__')`` would reach module globals."""

    def __reduce__(self):
        from mmengine.logging import HistoryBuffer
        return (getattr, (HistoryBuffer, '__init__'))


def _checkpoint_of_a_real_run(tmp_path):
    from mmengine.logging import HistoryBuffer, MessageHub
    import numpy as np
    hub = MessageHub.get_instance('ddml_test_checkpoint')
    hub.update_scalar('train/loss', 0.5)
    hub.update_scalar('train/loss', 0.25)
    ckpt = dict(
        meta=dict(iter=3, seed=np.int64(7), mean=np.float32(1.5),
                  arr=np.arange(3), epoch=0),
        state_dict={'w': torch.ones(2)},
        message_hub=hub.state_dict(),
    )
    assert isinstance(ckpt['message_hub']['log_scalars']['train/loss'],
                      HistoryBuffer)
    path = tmp_path / 'iter_3.pth'
    torch.save(ckpt, path)
    return path


def test_plain_torch_load_fails_without_the_allow_list(tmp_path):
    """Guard: the problem this module solves is real on this torch."""
    path = _checkpoint_of_a_real_run(tmp_path)
    registered = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    try:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(
            str(path))
        with pytest.raises(pickle.UnpicklingError):
            torch.load(path, weights_only=True)
    finally:
        torch.serialization.add_safe_globals(registered)
    assert 'mmengine.logging.history_buffer.HistoryBuffer' in unsafe
    assert 'builtins.getattr' in unsafe


def test_mmengine_checkpoint_loads_with_weights_only(tmp_path):
    path = _checkpoint_of_a_real_run(tmp_path)
    ckpt = _load_checkpoint(str(path), map_location='cpu')
    assert ckpt['meta']['iter'] == 3
    assert int(ckpt['meta']['seed']) == 7
    assert ckpt['meta']['arr'].tolist() == [0, 1, 2]
    buf = ckpt['message_hub']['log_scalars']['train/loss']
    assert buf.mean() == pytest.approx(0.375)
    assert buf.current() == pytest.approx(0.25)
    # and through torch.load's own default (weights_only=True)
    assert torch.load(path)['meta']['iter'] == 3


@pytest.mark.parametrize('payload', [_RunsCode(), _EscapesThroughGetattr()])
def test_checkpoint_that_would_run_code_is_refused(tmp_path, payload,
                                                   capfd):
    path = tmp_path / 'crafted.pth'
    torch.save({'state_dict': {}, 'meta': {'x': payload}}, path)
    with pytest.raises(CheckpointRefusedError) as info:
        _load_checkpoint(str(path), map_location='cpu')
    message = str(info.value)
    assert str(path) in message
    assert 'allow-list' in message
    assert isinstance(info.value, pickle.UnpicklingError)
    assert 'unpickled-code-ran' not in capfd.readouterr().out


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_local_checkpoint(str(tmp_path / 'nope.pth'))
