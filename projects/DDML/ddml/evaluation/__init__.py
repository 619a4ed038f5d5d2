from .kitti_cpu_iou import *  # noqa: F401,F403
from .waymo_metric import *  # noqa: F401,F403
