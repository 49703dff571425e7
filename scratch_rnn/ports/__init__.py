"""Ports: a scratch model converted to another framework, and back.

:mod:`~scratch_rnn.ports.to_torch` (a ``torch.nn.Module``), :mod:`~scratch_rnn.ports.from_torch`
(PyTorch modules to a scratch model) and :mod:`~scratch_rnn.ports.to_onnx` (an ONNX file, written with the
``onnx`` package, no TensorFlow). Each imports its framework when called, never at import time; the
harness (:mod:`scratch_rnn.testing`) runs every converted model as a candidate against Keras.
"""
