"""Benchmark competitor (d): MLServer with default settings and a small onnxruntime runtime."""
