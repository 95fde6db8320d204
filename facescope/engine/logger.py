"""Training metrics: a JSON-lines log (always), TensorBoard (when installed), a text line per interval."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm


class MetricsLogger:
    """Writes ``metrics.jsonl`` (one object per logged step / evaluation) on the main rank only.

    Files are created at the first record, so a run that fails while it is being set up (a bad
    resume checkpoint, say) leaves nothing behind.
    """

    def __init__(self, out_dir: Path, enabled: bool = True) -> None:
        self.enabled = enabled
        self.out_dir = out_dir
        self.path = out_dir / "metrics.jsonl"
        self._file = None
        self._tensorboard = None
        self._window: list[dict[str, float]] = []
        self._window_start = time.perf_counter()

    def info(self, message: str) -> None:
        if self.enabled:
            tqdm.write(f"facescope: {message}")

    def log_step(self, state: Any, metrics: dict[str, float], interval: int) -> None:
        """Accumulate ``metrics``; every ``interval`` steps write their mean with throughput figures."""
        if not self.enabled:
            return
        self._window.append(metrics)
        if interval <= 0 or state.global_step % interval:
            return
        elapsed = time.perf_counter() - self._window_start
        mean = {k: sum(m[k] for m in self._window) / len(self._window) for k in self._window[0]}
        images = sum(m["images"] for m in self._window)
        record = {"step": state.global_step, "epoch": state.epoch + 1, **{k: v for k, v in mean.items() if k != "images"}}
        record.update(images_per_s=images / max(elapsed, 1e-9), data_fraction=sum(m["data_time"] for m in self._window) / max(elapsed, 1e-9))
        self._write(record)
        self._window, self._window_start = [], time.perf_counter()

    def log_eval(self, state: Any, result: dict[str, float]) -> None:
        if self.enabled:
            self._write({"step": state.global_step, "epoch": state.epoch, **{f"val_{k}": v for k, v in result.items()}})
            self.info("validation " + ", ".join(f"{k} {v:.4f}" for k, v in result.items() if isinstance(v, float)))

    def _write(self, record: dict[str, Any]) -> None:
        if self._file is None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a")
            self._tensorboard = _tensorboard_writer(self.out_dir)
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._tensorboard is not None:
            for key, value in record.items():
                if key not in ("step", "epoch") and isinstance(value, (int, float)):
                    self._tensorboard.add_scalar(key, value, record["step"])

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None


def _tensorboard_writer(out_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(out_dir / "tensorboard"))
