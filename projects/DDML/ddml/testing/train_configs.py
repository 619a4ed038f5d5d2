"""Small training configs for tests, written as text files.

The configs inherit a given config, read the given KITTI-format root, train
without validation or test loops on CPU-sized batches and are written as
text so ``tools/train.py`` and ``tools/dist_train.sh`` load them like any
user config.
"""
from pathlib import Path
from typing import Optional

__all__ = ['write_train_config']


def write_train_config(path: Path,
                       data_root: Path,
                       *,
                       max_iters: int,
                       checkpoint_interval: int,
                       seed: int,
                       base: Path,
                       max_keep_ckpts: Optional[int] = None,
                       extra: str = '') -> Path:
    """Write an iteration-based training config inheriting ``base``.

    Args:
        path: where to write the config.
        data_root: the dataset root (a trailing ``/`` is added).
        max_iters: ``train_cfg.max_iters``.
        checkpoint_interval: the checkpoint hook's ``interval``.
        seed: ``randomness.seed``.
        base: the config to inherit.
        max_keep_ckpts: the checkpoint hook's ``max_keep_ckpts``; left to
            the base config when None.
        extra: config lines appended verbatim (e.g. ``custom_hooks``).

    Returns:
        ``path``.
    """
    keep = ('' if max_keep_ckpts is None else
            f', max_keep_ckpts={max_keep_ckpts}')
    path.write_text(f"""_base_ = ['{base}']
data_root = '{data_root}/'
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root))
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = None
test_evaluator = None
test_cfg = None
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop',
                 max_iters={max_iters})
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(interval={checkpoint_interval}{keep}))
randomness = dict(seed={seed})
{extra}""")
    return path
