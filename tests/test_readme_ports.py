"""The README's port-and-verify example runs as written, on a Keras 3 classifier of the model zoo."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
from helpers import require

ROOT = Path(__file__).resolve().parent.parent


def readme_port_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Ports: PyTorch and ONNX, proven", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return code


def test_the_readme_port_example_runs(keras, tmp_path, monkeypatch):
    require("torch"), require("onnx"), require("onnxruntime")
    from test_model_zoo import KERAS3, randomize_model

    model, _ = KERAS3["classifier"](keras, np.random.default_rng(7))
    randomize_model(model, np.random.default_rng(8))
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save("classifier.keras")
    exec(compile(readme_port_example(), "README.md (ports example)", "exec"), {})
    assert (tmp_path / "classifier.onnx").stat().st_size > 0
    back = keras.saving.load_model(tmp_path / "back.keras")
    ids = np.random.default_rng(9).integers(0, 5, size=(3, 6))
    np.testing.assert_array_equal(
        np.asarray(back.predict(ids, verbose=0)), np.asarray(model.predict(ids, verbose=0))
    )  # the same weights, the same Keras: the same bits


def test_the_example_would_fail_on_a_planted_bug(keras, tmp_path, monkeypatch):
    """The example's assertion has teeth: a port whose output is off by a little fails it."""
    require("torch")
    from test_model_zoo import KERAS3, randomize_model

    from scratch_rnn.testing import torch_candidates
    from scratch_rnn.testing.model_verify import verify_model

    model, _ = KERAS3["classifier"](keras, np.random.default_rng(7))
    randomize_model(model, np.random.default_rng(8))
    path = tmp_path / "classifier.keras"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(path)

    def off_by_a_little(model_file, inputs):
        return torch_candidates.model(model_file, inputs) * np.float32(1 + 1e-3)  # one output: one array

    assert verify_model(path, candidate=torch_candidates.model, max_examples=10, shrink_seconds=0).ok
    report = verify_model(path, candidate=off_by_a_little, max_examples=10, shrink_seconds=0)
    assert not report.ok and "differ beyond tolerance" in str(report.failures[0])
