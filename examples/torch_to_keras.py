"""A PyTorch text classifier to a Keras 3 ``.keras`` file, without TensorFlow, and the file proven against Keras.

The classifier is the usual ``nn.Module``: an embedding, a bidirectional LSTM, a linear head on the final hidden
states. ``from_torch`` takes modules, not a ``forward`` (that is code), so the module's parts go in as an
``nn.Sequential``; ``return_sequences=False`` is the ``torch.cat([h_n[-2], h_n[-1]], -1)`` of its ``forward``
(docs/ports.md, "PyTorch → Keras"). Run ``python examples/torch_to_keras.py``: the conversion and the save need
only NumPy, PyTorch and h5py; the proof at the end runs real Keras (``pip install -e '.[verify]'``).
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from torch import nn

import scratch_rnn


class Classifier(nn.Module):
    def __init__(self, vocabulary=50, embedding=16, hidden=32, classes=4):
        super().__init__()
        self.embedding = nn.Embedding(vocabulary, embedding)
        self.lstm = nn.LSTM(embedding, hidden, num_layers=2, bidirectional=True, batch_first=True)
        self.fc = nn.Linear(2 * hidden, classes)

    def forward(self, ids):
        _, (h, _) = self.lstm(self.embedding(ids))  # h: (layers * 2, batch, hidden)
        return self.fc(torch.cat([h[-2], h[-1]], dim=-1))  # the last layer's forward and backward states


def main(path="classifier.keras", examples=20) -> int:
    torch.manual_seed(0)
    net = Classifier().eval()
    model = scratch_rnn.from_torch(nn.Sequential(net.embedding, net.lstm, net.fc), return_sequences=False)
    ids = np.random.default_rng(0).integers(0, 50, (8, 12))
    with torch.no_grad():
        expected = net(torch.from_numpy(ids)).numpy()
    print(f"from_torch vs PyTorch: max |difference| {np.max(np.abs(model.predict(ids) - expected)):.2e}")
    model.save(path)  # a Keras 3 file: keras.saving.load_model(path) reads it
    print(f"written {path}")

    from scratch_rnn.testing.model_verify import verify_model  # needs Keras

    report = verify_model(path, max_examples=examples, seed=1)  # Keras vs the engine, generated token ids
    print(f"verify_model: {report.examples} cases, max err/tol {report.max_margin:.3g}, ok={report.ok}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
