"""The MiniFAS training backend (torch): `python -m training prep|train|eval|export`.

Runs as a separate process; the GUI reads its `--events` output through
training.events and shows the Train step's preset from training.recipe, which, unlike the
rest of this package, do not import torch.
"""

# fasdesk sets OpenCV's decoder limits on import; do it before any training module loads cv2.
import fasdesk  # noqa: E402,F401
