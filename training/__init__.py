"""The MiniFAS training backend (torch): `python -m training prep|train|eval|export`.

Runs as a separate process; the GUI reads its `--events` output through
training.events, which, unlike the rest of this package, does not import torch.
"""

# fasdesk sets OpenCV's decoder limits on import; do it before any training module loads cv2.
import fasdesk  # noqa: E402,F401
