"""The camera calibration's default settings, in a module of their own so that the command
line can show them in its help without loading OpenCV (fasdesk.core.calibration.session does)."""

SECONDS = 10.0  # recording time per stage from a camera
EVERY = 2  # keep one frame in EVERY
TARGET_BPCER = 0.05  # share of real faces the threshold may reject
MAX_APCER = 0.10  # attacks passed above this share at the target call for fine-tuning
