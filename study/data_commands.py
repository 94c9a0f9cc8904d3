"""`wae-study data generate | fetch | verify | show`: the dSprites file a study trains on."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from study.errors import BadInput
from trainables import data as dsdata


def writable_target(path: Path) -> Path:
    """Refuse an output path whose folder cannot be created or written, before any work."""
    path = path.expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path.parent).close()
    except OSError as err:
        raise BadInput(f"cannot create folder {path.parent} or write in it ({err.strerror}); "
                       "choose another --out") from None
    if path.is_dir():
        raise BadInput(f"{path} is a folder; give a file path with --out")
    return path


def generate(out: Path | None, force: bool) -> int:
    path = (out or dsdata.default_path()).expanduser()
    if path.suffix not in (".h5", ".hdf5"):
        raise BadInput(f"--out must end in .h5 or .hdf5, got {path.name}")
    if path.exists() and not force:
        raise BadInput(f"{path} already exists; pass --force to render it again")
    writable_target(path)
    from trainables import render

    start = time.perf_counter()
    render.write_hdf5(path)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, "
          f"{time.perf_counter() - start:.1f} s)")
    return 0


def fetch(out: Path | None, url: str | None) -> int:
    """Download the official file (resuming a partial one), check it, then `verify` it."""
    from trainables import fetch as fetching

    path = writable_target(out or dsdata.official_path())
    if path.suffix not in (".h5", ".hdf5"):
        raise BadInput(f"--out must end in .h5 or .hdf5 (the official file is HDF5), got "
                       f"{path.name}")
    source = fetching.official_source(url)
    start = time.perf_counter()
    try:
        fetching.fetch(source, path)
    except fetching.FetchError as err:
        raise BadInput(str(err)) from None
    print(f"fetched {path} ({path.stat().st_size / 1e6:.1f} MB, sha256 {source.sha256[:12]}... "
          f"as recorded by TensorFlow Datasets; {time.perf_counter() - start:.1f} s)")
    return verify(path)


def verify(path: Path) -> int:
    start = time.perf_counter()
    dataset = dsdata.load(path, cached=False)  # the file itself, not the bits kept from it
    on = np.unpackbits(dataset.packed[:: 997], axis=-1).sum(axis=1)
    print(f"ok: {path}: {dataset.n} images, factor grid and ordering match the official "
          f"dSprites, pixels in {{0, 1}} (mean {on.mean():.1f} pixels on; "
          f"{time.perf_counter() - start:.1f} s)")
    return 0


def show(path: Path, out: Path, n: int = 32, seed: int = 0) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = writable_target(out)
    if out.suffix.lower() != ".png":
        raise BadInput(f"--out must end in .png, got {out.name}")
    dataset = dsdata.load(path)
    classes = dataset.sample_classes(n, np.random.default_rng(seed))
    images = dataset.images_for(classes)
    cols = 8
    fig, axes = plt.subplots(-(-n // cols), cols, figsize=(cols * 1.2, -(-n // cols) * 1.35))
    for ax, image, c in zip(axes.flat, images, classes, strict=False):
        ax.imshow(image, cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{c[1]} {c[2]} {c[3]}\n{c[4]},{c[5]}", fontsize=6)
        ax.axis("off")
    fig.suptitle(f"{n} samples (shape scale orient / posX,posY classes): {path.name}",
                 fontsize=8)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, out)
    print(f"wrote {out}")
    return 0
