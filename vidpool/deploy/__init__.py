"""Weights out: ``predict`` on video files, and exporting models (ONNX, TorchScript, torch.export)."""
