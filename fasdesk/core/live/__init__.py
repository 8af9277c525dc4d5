"""Frame sources (camera, video, folder), tracking and smoothing, the live step."""
