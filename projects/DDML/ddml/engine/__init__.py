from .checkpoint import *  # noqa: F401,F403
from .launch import *  # noqa: F401,F403
