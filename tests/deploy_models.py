"""Tiny models and process helpers shared by the ExecuTorch and OpenVINO tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# A small CNN with BatchNorm (OpenVINO folds it; ExecuTorch lowers it whole), as a user's
# own ``py:`` model: it builds in milliseconds and lowers in seconds.
TINY_CNN = """
import torch


class TinyCNN(torch.nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = torch.nn.BatchNorm2d(8)
        self.conv2 = torch.nn.Conv2d(8, 16, 3, padding=1, stride=2)
        self.bn2 = torch.nn.BatchNorm2d(16)
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc = torch.nn.Linear(16, num_classes)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


def tiny(num_classes=10):
    return TinyCNN(num_classes)
"""
LIBRARIES = ("executorch", "openvino", "nncf")
SRC = str(Path(__file__).resolve().parent.parent / "src")


def tiny_cnn_model(directory: Path) -> str:
    """The ``py:`` name of :data:`TINY_CNN` written into ``directory``."""
    path = directory / "tinycnn.py"
    path.write_text(TINY_CNN, encoding="utf-8")
    return f"py:{path}:tiny"


def tiny_bert64(directory: Path) -> Path:
    """A save_pretrained 2-layer BERT of hidden size 64 (int4 groups must adjust to it)."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=120, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=128, max_position_embeddings=64,
    )  # fmt: skip
    BertModel(config).save_pretrained(directory)
    return directory


def env_without(directory: Path, modules: tuple[str, ...]) -> dict[str, str]:
    """An environment in which ``modules`` do not import, in the process and in every
    Python process it starts (a ``sitecustomize`` sets them to None in ``sys.modules``,
    which is how Python itself blocks an import)."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = ["import sys"] + [f"sys.modules[{m!r}] = None" for m in modules]
    (directory / "sitecustomize.py").write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(directory), SRC, env.get("PYTHONPATH", "")])
    return env


def python(code: str, env: dict[str, str] | None = None, timeout: int = 600) -> str:
    """Run ``code`` in a fresh Python (this checkout's source first); its stdout."""
    if env is None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([SRC, env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout
