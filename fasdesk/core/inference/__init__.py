"""Face detection, the shared crop/preprocessing, the ONNX liveness engine, its fast rewrite and the frame pipeline."""
