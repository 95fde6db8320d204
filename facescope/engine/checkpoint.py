"""Atomic, self-describing training checkpoints with everything needed for an exact resume."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facescope.errors import FacescopeError
from facescope.fileio import atomic_path


def rng_state() -> dict[str, Any]:
    """Python, numpy, torch (and CUDA) generator states, as types ``torch.load(weights_only=True)`` accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a training checkpoint written by :func:`save_checkpoint`."""
    path = Path(path)
    if not path.is_file():
        raise FacescopeError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise FacescopeError(f"cannot read checkpoint {path}: {type(exc).__name__}: {exc}")
    missing = {"model", "optimizer", "epoch", "batch_in_epoch", "global_step"} - set(payload)
    if missing:
        raise FacescopeError(f"{path} is not a facescope training checkpoint (missing {sorted(missing)})")
    return payload
