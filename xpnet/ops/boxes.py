"""``xpnet.ops.boxes``: box operations with torchvision's names and semantics (boxes as
``(x1, y1, x2, y2)``); see :mod:`xpnet.detection.boxes`."""

from xpnet.detection.boxes import *  # noqa: F401,F403
from xpnet.detection.boxes import __all__  # noqa: F401
