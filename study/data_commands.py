"""`wae-study data generate | fetch | verify | show`: the files the datasets are read from."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from study.errors import BadInput
from trainables import data as dsdata
from trainables.datasets import DATASETS, DSPRITES, FileDataset


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


def fetch(name: str, out: Path | None, url: str | None) -> int:
    """Download the published file of dataset `name` (its variants': dSprites'), resuming a
    partial one, check it against its recorded size and checksum, then `verify` it."""
    from trainables import fetch as fetching

    owner = name if isinstance(DATASETS[name], FileDataset) else DSPRITES.name
    default = dsdata.official_path() if owner == DSPRITES.name else dsdata.fetched_path(owner)
    path = writable_target(out or default)
    if path.suffix != default.suffix:
        raise BadInput(f"--out must end in {default.suffix} (the published {owner} file is "
                       f"{default.suffix}), got {path.name}")
    source = fetching.source_for(owner, url)
    start = time.perf_counter()
    try:
        fetching.fetch(source, path)
    except fetching.FetchError as err:
        raise BadInput(str(err)) from None
    print(f"fetched {path} ({path.stat().st_size / 1e6:.1f} MB, {source.algorithm} "
          f"{source.digest[:12]}... as recorded by {source.recorded_by}; "
          f"{time.perf_counter() - start:.1f} s)")
    return verify(path, owner)


def verify(path: Path, name: str | None = None) -> int:
    """Check a dataset's file (`name`; default: the dataset whose published file has this
    name, else dSprites) and say what was checked."""
    name = name or next((spec.name for spec in DATASETS.values()
                         if getattr(spec, "file_name", None) == path.name), DSPRITES.name)
    start = time.perf_counter()
    if isinstance(DATASETS[name], FileDataset):
        data = dsdata.load(path, dataset=name)
        print(f"ok: {path}: {data.n:,} {name} images {data.dataset.image_shape}, uint8, in the "
              f"order of its factor grid {data.factor_sizes}"
              f"{', labels checked' if data.dataset.labels_key else ''} "
              f"({time.perf_counter() - start:.1f} s)")
        return 0
    data = dsdata.load(path, cached=False)  # the file itself, not the bits kept from it
    on = np.unpackbits(data.packed[:: 997], axis=-1).sum(axis=1)
    print(f"ok: {path}: {data.n} images, factor grid and ordering match the official "
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
