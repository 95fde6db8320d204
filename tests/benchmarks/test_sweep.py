"""The sweep's verdicts on synthetic rows: the best facescope configuration at no more latency than
each YuNet point, what is missed and by how much, and the int8 / fp32 ratios."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.sweep import best_at_yunet_points, int8_ratios, markdown  # noqa: E402


def _row(name, kind, ms, hard, model="", side=0, precision="fp32", scale=1.0, threads=1):
    ap = {"easy": 0.9, "medium": 0.85, "hard": hard}
    return {"name": name, "kind": kind, "ms": ms, "ap": ap, "model": model, "long_side": side, "precision": precision, "scale": scale, "threads": threads}


ROWS = [
    _row("yunet x0.5", "yunet", 14.0, 0.47, scale=0.5),
    _row("yunet x1", "yunet", 69.0, 0.82),
    _row("s500 long:480 fp32", "facescope", 12.0, 0.40, "s500", 480),
    _row("s500 long:480 int8", "facescope", 9.0, 0.395, "s500", 480, "int8"),
    _row("s500 long:800 fp32", "facescope", 50.0, 0.83, "s500", 800),
    _row("s500 long:640 fp32", "facescope", 30.0, 0.72, "s500", 640),
]


def test_verdict_per_yunet_point():
    first, second = best_at_yunet_points(ROWS)
    # at 14 ms the best affordable is long:480 fp32 (0.40 < 0.47): missed by 7 points; long:640 (0.72) is as accurate, at 30 ms
    assert (first["best"], first["met"], first["cheapest_as_accurate"]) == ("s500 long:480 fp32", False, "s500 long:640 fp32")
    assert (second["best"], second["met"]) == ("s500 long:800 fp32", True)
    text = markdown({"date": "d", "command": "c", "images": 38, "rounds": 1, "load_average_start": [1], "load_average_end": [1],
                     "rows": ROWS, "verdicts": [first, second], "int8": int8_ratios(ROWS)})  # fmt: skip
    assert "**not met** by 7.0 points; s500 long:640 fp32 is as accurate at 30.0 ms (2.14x)" in text
    assert "met (+1.0 points)" in text


def test_int8_ratio_and_ap_change():
    (ratio,) = int8_ratios(ROWS)
    assert ratio["ratio"] == 9.0 / 12.0 and round(ratio["hard_change"], 6) == -0.5
