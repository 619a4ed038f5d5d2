from .kitti_converter import *  # noqa: F401,F403
from .kitti_empty_frames import *  # noqa: F401,F403
from .synthetic_kitti import *  # noqa: F401,F403
