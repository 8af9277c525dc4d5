"""The camera calibration's default settings, in a module of their own so that the command
line can show them in its help without loading OpenCV (fasdesk.core.calibration.session does)."""

# Recording time per stage from a camera: long enough for the held-out real faces a 5%
# target needs (60: session.seconds_needed gives 20.9 s at 25 fps keeping one frame in 2),
# with room for frames without a judgeable face.
SECONDS = 24.0
EVERY = 2  # keep one frame in EVERY
TARGET_BPCER = 0.05  # share of real faces the threshold may reject
MAX_APCER = 0.10  # attacks passed above this share at the target call for fine-tuning
