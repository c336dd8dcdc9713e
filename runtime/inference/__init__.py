"""Serving signed models: ONNX Runtime sessions in Ray actors placed by the scheduler."""
