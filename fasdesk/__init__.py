"""fasdesk: desktop face liveness checking."""
from fasdesk.core.io.files import limit_opencv_decoders

__version__ = "0.1.0"

# OpenCV reads its pixel limit once, when cv2 loads: set it before any module imports cv2.
limit_opencv_decoders()
