"""A network spec made runnable: the TFLite, Keras, torch and ONNX builders, model files and
their cache, export."""
