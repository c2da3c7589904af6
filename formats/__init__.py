"""What export hands to serving, each with one owner module and one type, torch-free.

`model_repository`: Triton's repository layout (model folders, version folders, config.pbtxt)
and `ModelRepository`, which writes and reads it. `model_card`: `ModelCard`, what skipfold
knows about an exported model, carried in the ONNX file's metadata.
"""
