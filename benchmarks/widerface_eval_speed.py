"""Wall time of the WIDER FACE evaluator on a full val prediction set, and its speed ratio against
the loop-for-loop transcription of the official MATLAB scripts on a slice of the same data.

    python benchmarks/widerface_eval_speed.py                   # yolov7_face, ../shared/data
    python benchmarks/widerface_eval_speed.py --set retinaface_mnet_retrained --oracle-images 60

Measured, in one run: (1) reading the four .mat files, (2) reading the 3,226 prediction files,
(3) evaluating (AP at IoU 0.5 and the 10-IoU challenge mAP), (4) the same three steps end to end as
`facescope eval widerface --predictions` in a fresh interpreter (includes Python start-up), and
(5) the evaluator vs the MATLAB transcription (tests/oracles/widerface_matlab.py) on the
first N images, whose APs must agree to 1e-12. Run it on a quiet machine for final numbers.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # the test oracles (`tests/oracles/`)

EXPECTED = {  # the official protocol on these files (SOURCES.md)
    "yolov7_face": {"easy": 0.9324932633835993, "medium": 0.9127942909886333, "hard": 0.8297205022059916},
}


def timed(fn, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN201
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_data = os.environ.get("FACESCOPE_SHARED_DATA", str(REPO.parent / "shared" / "data"))
    parser.add_argument("--data", default=default_data, help="shared data folder (holds widerface/)")
    parser.add_argument("--set", default="yolov7_face", help="prediction set under widerface/predictions")
    parser.add_argument("--repeat", type=int, default=3, help="in-process repetitions (best is reported)")
    parser.add_argument("--oracle-images", type=int, default=40, help="images for the MATLAB-transcription comparison")
    args = parser.parse_args()

    from facescope.eval.widerface import evaluate_widerface
    from facescope.eval.widerface_io import read_prediction_folder, read_wider_mat

    gt_dir = Path(args.data) / "widerface/ground_truth"
    pred_dir = Path(args.data) / "widerface/predictions" / args.set
    best = {"gt": 1e9, "read": 1e9, "eval": 1e9, "eval_ap_only": 1e9}
    for _ in range(args.repeat):
        gt, t_gt = timed(read_wider_mat, gt_dir)
        (preds, _), t_read = timed(read_prediction_folder, pred_dir, gt.keys)
        result, t_eval = timed(evaluate_widerface, preds, gt)
        _, t_ap = timed(evaluate_widerface, preds, gt, challenge=False)
        for key, value in zip(best, (t_gt, t_read, t_eval, t_ap)):
            best[key] = min(best[key], value)
    total = best["gt"] + best["read"] + best["eval"]
    print(f"prediction set: {args.set} ({result.num_predictions} boxes, {result.num_images} images)")
    print(f"AP easy {result.ap['easy']!r} medium {result.ap['medium']!r} hard {result.ap['hard']!r}")
    expected = EXPECTED.get(args.set)
    if expected:
        worst = max(abs(result.ap[s] - expected[s]) for s in expected)
        print(f"max |AP - official| = {worst:.3g} ({'OK' if worst <= 1e-9 else 'MISMATCH'})")
    print(f"in-process (best of {args.repeat}): read GT {best['gt']:.3f} s + read predictions {best['read']:.3f} s + "
          f"evaluate {best['eval']:.3f} s (AP only {best['eval_ap_only']:.3f} s) = {total:.3f} s")

    command = [sys.executable, "-m", "facescope", "eval", "widerface", "--predictions", str(pred_dir), "--gt", str(gt_dir)]
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    print(f"end to end `facescope eval widerface --predictions` (fresh interpreter): {time.perf_counter() - start:.3f} s")

    from oracles.widerface_matlab import matlab_widerface_ap

    keys = gt.keys[: args.oracle_images]
    small = gt.restrict_to(keys)
    ours, t_ours = timed(evaluate_widerface, {k: preds[k] for k in keys}, small, missing="empty", challenge=False)
    keep = {s: [list(k + 1) for k in small.keep[s]] for s in ("easy", "medium", "hard")}
    oracle, t_oracle = timed(matlab_widerface_ap, preds, keys, [im.boxes for im in small.images], keep)
    agree = max(abs(ours.ap[s] - oracle[s]) for s in oracle)
    print(f"first {len(keys)} images: MATLAB transcription {t_oracle:.2f} s, facescope {t_ours:.4f} s, "
          f"ratio {t_oracle / t_ours:.0f}x, max |AP diff| {agree:.2g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
