"""Input checks shared by the object-descriptor losses."""
from torch import Tensor


def check_object_inputs(descriptors: Tensor, depths: Tensor) -> Tensor:
    """Check one descriptor row per depth and flatten the depths.

    Args:
        descriptors (Tensor): Object descriptors, shape (N, C).
        depths (Tensor): Object depths in metres, N values of any shape.

    Returns:
        Tensor: ``depths`` as shape (N,).

    Raises:
        ValueError: When ``descriptors`` is not 2-D or the counts differ.
    """
    if descriptors.dim() != 2:
        raise ValueError(f'descriptors must have shape (N, C), got '
                         f'{tuple(descriptors.shape)}.')
    depths = depths.reshape(-1)
    if depths.shape[0] != descriptors.shape[0]:
        raise ValueError(f'depths must have one entry per descriptor '
                         f'row: got {depths.shape[0]} depths for '
                         f'{descriptors.shape[0]} descriptors.')
    return depths
