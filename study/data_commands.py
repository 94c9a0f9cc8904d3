"""`wae-study data generate | fetch | verify | show`: the files the datasets are read from."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from study.errors import BadInput
from trainables import converted
from trainables import data as dsdata
from trainables.datasets import DATASETS, DSPRITES, FileDataset, ScreamDSprites


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
    partial one, check it against its recorded size and checksum (smallnorb's and cars3d's
    files each, then converted into one), then `verify` it."""
    from trainables import fetch as fetching

    if isinstance(DATASETS[name], ScreamDSprites):
        return fetch_painting(DATASETS[name], out, url)
    owner = name if isinstance(DATASETS[name], FileDataset) else DSPRITES.name
    default = dsdata.official_path() if owner == DSPRITES.name else dsdata.fetched_path(owner)
    path = writable_target(out or default)
    if path.suffix != default.suffix:
        raise BadInput(f"--out must end in {default.suffix} (the published {owner} file is "
                       f"{default.suffix}), got {path.name}")
    try:
        if owner in converted.CONVERSIONS:
            fetch_and_convert(owner, path, url)
        else:
            source, start = fetching.source_for(owner, url), time.perf_counter()
            fetching.fetch(source, path)
            _fetched("fetched", path, source, start)
    except fetching.FetchError as err:
        raise BadInput(str(err)) from None
    return verify(path, owner)


def fetch_painting(dataset: ScreamDSprites, out: Path | None, url: str | None) -> int:
    """Download scream_dsprites' painting (its images are dSprites', generated offline),
    check it is an image its patches fit in, and print its SHA-256: no record from elsewhere
    pins the file, so the studies on it record the digest instead."""
    from analysis.provenance import dataset_fingerprint
    from trainables import fetch as fetching
    from trainables.image_files import DataError, read_painting

    path = dsdata.painting_path(dataset)
    if out is not None and out.expanduser().resolve() != path.resolve():
        raise BadInput(f"{dataset.name} reads its painting from {path} (under "
                       "$XDG_CACHE_HOME): drop --out")
    writable_target(path)
    try:
        start = time.perf_counter()
        fetching.fetch(fetching.source_for(dataset.name, url), path)
        painting = read_painting(path, dataset)
    except fetching.FetchError as err:
        raise BadInput(str(err)) from None
    except DataError as err:
        path.unlink()
        raise BadInput(f"{err} (deleted it)") from None
    found = dataset_fingerprint(path)
    print(f"fetched {path} ({found['bytes']:,} bytes, sha256 {found['sha256']}; "
          f"{time.perf_counter() - start:.1f} s): thumbnail {painting.shape[1]}x"
          f"{painting.shape[0]}. No record from elsewhere pins this file: each study on "
          f"{dataset.name} records its digest")
    return 0


def fetch_and_convert(name: str, path: Path, url: str | None) -> None:
    """Fetch each published file of dataset `name` into `path`'s folder (one checked there
    already is kept: a failed conversion reruns without downloading again), then convert
    them into `path`."""
    from trainables import fetch as fetching

    downloads = []
    for file_name, source in converted.sources_for(name, url):
        download, start = path.parent / file_name, time.perf_counter()
        if download.is_file() and fetching.mismatch(source, download) is None:
            _fetched("kept", download, source, start)
        else:
            fetching.fetch(source, download)
            _fetched("fetched", download, source, start)
        downloads.append(download)
    start = time.perf_counter()
    n = converted.convert(name, downloads, path)
    print(f"converted {n:,} images into {path} ({path.stat().st_size / 1e6:.1f} MB, "
          f"{time.perf_counter() - start:.1f} s); the downloads stay in {path.parent}")


def _fetched(what: str, path: Path, source: converted.Source, start: float) -> None:
    print(f"{what} {path} ({path.stat().st_size / 1e6:.1f} MB, {source.algorithm} "
          f"{source.digest[:12]}... as recorded by {source.recorded_by}; "
          f"{time.perf_counter() - start:.1f} s)")


def dataset_of_file(path: Path) -> str:
    """The dataset whose published file has `path`'s name, else dSprites (whose files and
    variants' have any name)."""
    return next((spec.name for spec in DATASETS.values()
                 if isinstance(spec, FileDataset) and spec.file_name == path.name),
                DSPRITES.name)


def verify(path: Path, name: str | None = None) -> int:
    """Check a dataset's file (`name`; default: the dataset whose published file has this
    name, else dSprites) and say what was checked."""
    name = name or dataset_of_file(path)
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


def show(path: Path, out: Path, name: str | None = None, n: int = 32, seed: int = 0) -> int:
    """A picture of `n` images of dataset `name` (default as `verify` infers it) from the file
    at `path`, each titled with its factor classes (the latent ones)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = writable_target(out)
    if out.suffix.lower() != ".png":
        raise BadInput(f"--out must end in .png, got {out.name}")
    dataset = dsdata.load(path, dataset=name or dataset_of_file(path))
    classes = dataset.sample_classes(n, np.random.default_rng(seed))
    images = dataset.images_for(classes)
    latent = list(dataset.latent_factors)
    cols = 8
    fig, axes = plt.subplots(-(-n // cols), cols, figsize=(cols * 1.2, -(-n // cols) * 1.35))
    for ax, image, c in zip(axes.flat, images, classes[:, latent], strict=False):
        ax.imshow(image, cmap="gray", vmin=0, vmax=1)
        half = -(-len(c) // 2)
        ax.set_title(f"{' '.join(map(str, c[:half]))}\n{' '.join(map(str, c[half:]))}",
                     fontsize=6)
        ax.axis("off")
    names = " ".join(dataset.factor_names[i] for i in latent)
    fig.suptitle(f"{n} {dataset.dataset.name} samples (classes of {names}): {path.name}",
                 fontsize=8)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, out)
    print(f"wrote {out}")
    return 0
