"""Time the dSprites renderer and measure its calibration: one JSON line on stdout.

    python benchmarks/render.py [--out PATH]

Renders the packed set (the in-memory training form), writes the HDF5 file (to PATH, or a
temporary folder that is removed afterwards), and, when the reference frames exist, reports
the best IoU of each of the 160 real dSprites frames against the rendered set.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainables import render  # noqa: E402

REFERENCE = (Path(__file__).resolve().parents[1].parent / "shared" / "reference"
             / "dsprites_reference_frames.npz")


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the HDF5 here (default: a temp folder)")
    parser.add_argument("--reference", type=Path, default=REFERENCE,
                        help="reference frames .npz (default: %(default)s)")
    args = parser.parse_args(argv)

    result: dict = {"renderer_version": render.RENDERER_VERSION, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        path = args.out or Path(tmp) / "dsprites_generated.h5"

        start = time.perf_counter()
        render.write_hdf5(path)
        result["write_s"] = round(time.perf_counter() - start, 2)  # renders as it writes
        result["file_mb"] = round(path.stat().st_size / 1e6, 1)
        result["peak_rss_write_mb"] = round(peak_rss_mb())

        start = time.perf_counter()
        packed = render.render_packed()
        result["render_s"] = round(time.perf_counter() - start, 2)
        result["peak_rss_mb"] = round(peak_rss_mb())

    if args.reference.exists():
        frames = np.load(args.reference)["frames"]
        start = time.perf_counter()
        best = render.best_iou(frames, packed)
        result.update(
            calibration_s=round(time.perf_counter() - start, 2),
            frames=len(best),
            mean_iou=round(float(best.mean()), 5),
            min_iou=round(float(best.min()), 4),
            pixel_exact=int((best == 1).sum()),
        )
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
