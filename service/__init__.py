"""The FastAPI + ONNX Runtime inference server (`skipfold serve`); it never imports torch."""
