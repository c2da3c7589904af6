"""Folding every BatchNorm (and SkipInit's alpha) into the convolutions and writing ONNX."""
