"""The datasets whose published files must be converted before a study can read them:
smallnorb and cars3d. `wae-study data fetch NAME` downloads each published file
(`trainables.fetch`: resumable, checked against a record made by a source other than the
server) into the folder of the dataset's file, keeps it there, and converts the files once
into one uint8 `.npz` of images (N, 64, 64, C) in the row-major order of the factor grid,
written atomically, which `trainables.image_files` then reads like MPI3D's. A failed
conversion leaves the checked downloads in place: running the command again reuses them.

Both follow disentanglement_lib (`data/ground_truth/norb.py`, `cars3d.py`):
- smallnorb: NYU's six `.mat.gz` files, NORB's binary matrices (a magic number naming the
  element type, the number of dimensions, at least 3 dimensions, the data; not MATLAB's
  format). Its training and testing sets together make the grid; each image is the first of
  its stereo pair (`norb[:, 0]`), its factors category (`-cat`), instance, elevation,
  azimuth / 2 and lighting (`-info`). Each image is resized to 64x64 as disentanglement_lib
  does it: Pillow's Lanczos filter (their `ANTIALIAS`) on the bytes read as int8, which
  Pillow takes as a 32-bit integer image (mode I) resampled without clipping. Where the
  filter overshoots [0, 255] disentanglement_lib keeps the value (beyond [0, 1] after / 255);
  stored as uint8 it is clipped here: the only difference.
- cars3d: the `data/cars/*.mat` files of `nips2015-analogy-data.tar.gz`, each an 'im' of
  uint8 (128, 128, 3, azimuth 24, elevation 4), each image resized to 64x64 in RGB with
  Lanczos (disentanglement_lib's `thumbnail((64, 64, 3), ANTIALIAS)` is that resize in the
  Pillow it ran on; Pillow 7 and later refuse the 3-element size). The object type is the
  rank of the file's name; disentanglement_lib's is the order the directory listing gives,
  which the file system picks.

The records: smallnorb's sizes and SHA-256s are TensorFlow Datasets'
(`tensorflow_datasets/datasets/smallnorb/checksums.tsv`); for cars3d's archive only an MD5
is recorded elsewhere (disent's, `nmichlo/disent`), no size. None of these files was ever
downloaded from here (no network); the tests convert small files of the same layout.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import tarfile
import urllib.parse
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

import numpy as np

from trainables.datasets import DATASETS, FileDataset
from trainables.experiment import replacing
from trainables.fetch import Source
from trainables.image_files import DataError

NORB_BYTE, NORB_INT = 0x1E3D4C55, 0x1E3D4C54  # the magic numbers of NORB's uint8, int32 matrices
NORB_SIZE = 96  # each camera's image, pixels a side
CARS_SIZE = 128
_CHUNK = 1024  # NORB records read at a time: 18 MB


@dataclass(frozen=True)
class Conversion:
    """A dataset's published files and how they become its images in grid order:
    `convert(dataset, paths)` takes the downloads in the order of `sources`."""

    sources: tuple[Source, ...]
    convert: Callable[[FileDataset, list[Path]], np.ndarray]


def published_name(source: Source) -> str:
    """The name a published file is kept under: the last part of its canonical address."""
    return PurePosixPath(urllib.parse.urlparse(source.url).path).name


def sources_for(name: str, url: str | None = None) -> list[tuple[str, Source]]:
    """Dataset `name`'s published files: the name each is kept under, and its source, from
    `url` when given (a mirror serves the same bytes: the records stay): the mirror's address
    of the file where there is one, of the folder holding them where there are several."""
    sources = CONVERSIONS[name].sources
    if url is None:
        return [(published_name(s), s) for s in sources]
    folder = url if url.endswith("/") else url + "/"
    return [(published_name(s), dataclasses.replace(
        s, url=url if len(sources) == 1 else folder + published_name(s))) for s in sources]


def convert(name: str, downloads: list[Path], out: Path) -> int:
    """Convert dataset `name`'s downloaded files into its images at `out` (atomically);
    returns how many images. DataError when the files do not fill its factor grid."""
    dataset = DATASETS[name]
    assert isinstance(dataset, FileDataset)
    try:
        images = CONVERSIONS[name].convert(dataset, downloads)
    except DataError:
        raise
    except (OSError, EOFError, ValueError, KeyError, tarfile.TarError, zlib.error) as err:
        raise DataError(f"cannot convert {name}'s files ({type(err).__name__}: {err}): "
                        f"delete {', '.join(p.name for p in downloads)} in {out.parent} and "
                        f"run `wae-study data fetch {name}` again") from None
    with replacing(out) as tmp, open(tmp, "wb") as f:
        np.savez(f, **{dataset.images_key: images})
    return len(images)


def grid_order(dataset: FileDataset, classes: np.ndarray, what: str) -> np.ndarray:
    """The flat grid index of each image from its factor classes (n, factors); DataError
    unless they fill every cell of the grid exactly once."""
    classes = np.asarray(classes, dtype=np.int64)
    outside = np.flatnonzero(np.any((classes < 0) | (classes >= dataset.factor_sizes), axis=1))
    if outside.size:
        raise DataError(f"{what}: image {outside[0]} has factor classes "
                        f"{classes[outside[0]].tolist()} outside the grid "
                        f"{dataset.factor_sizes}: {_not_published(dataset)}")
    index = np.ravel_multi_index(tuple(classes.T), dataset.factor_sizes)
    counts = np.bincount(index, minlength=dataset.n_images)
    doubled, missing = np.flatnonzero(counts > 1), np.flatnonzero(counts == 0)
    if doubled.size or missing.size:
        first = np.unravel_index((doubled if doubled.size else missing)[0], dataset.factor_sizes)
        cell = ", ".join(f"{n} {int(c)}" for n, c in zip(dataset.factor_names, first,
                                                         strict=True))
        raise DataError(f"{what}: {doubled.size} cells of the factor grid have more than one "
                        f"image and {missing.size} none (the first: {cell}): "
                        f"{_not_published(dataset)}")
    return index


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """An image resized to `size` x `size` with Pillow's Lanczos filter (disentanglement_lib's
    `ANTIALIAS`) in the mode Pillow gives its dtype, clipped to uint8."""
    from PIL import Image

    resized = Image.fromarray(image).resize((size, size), Image.Resampling.LANCZOS)
    return np.clip(np.asarray(resized), 0, 255).astype(np.uint8)


def smallnorb(dataset: FileDataset, paths: list[Path]) -> np.ndarray:
    """smallNORB's training and testing sets (each `-dat`, `-cat`, `-info`, in the order of
    its `Conversion.sources`) in grid order: (category, instance, elevation, azimuth / 2,
    lighting), camera 0, 64x64x1."""
    images, classes = [], []
    for dat, cat, info in (paths[:3], paths[3:]):
        category = _norb_labels(cat, (None,))
        n = len(category)
        info_columns = _norb_labels(info, (n, 4))  # instance, elevation, azimuth, light
        classes.append(np.column_stack((category, info_columns // (1, 1, 2, 1))))  # azimuth 0..34
        images.append(_norb_images(dat, n, dataset.image_size))
    index = grid_order(dataset, np.concatenate(classes), "smallNORB's -cat and -info files")
    out = np.empty((dataset.n_images, *dataset.image_shape), dtype=np.uint8)
    out[index, ..., 0] = np.concatenate(images)
    return out


def cars3d(dataset: FileDataset, paths: list[Path]) -> np.ndarray:
    """The renderings in `data/cars/*.mat` of Cars3D's archive in grid order (elevation,
    azimuth, object type: the rank of the file's name), 64x64x3."""
    elevations, azimuths, _ = dataset.factor_sizes
    names, meshes = [], []
    with tarfile.open(paths[0], mode="r|gz") as archive:  # one pass: a gzip stream
        for member in archive:
            where = PurePosixPath(member.name.removeprefix("./"))
            if member.isfile() and where.parent == PurePosixPath("data/cars") \
                    and where.suffix == ".mat":
                names.append(where.name)
                meshes.append(_car_images(archive.extractfile(member).read(), where.name,
                                          dataset))
    if not names:
        raise DataError(f"{paths[0].name} has no data/cars/*.mat: {_not_published(dataset)}")
    _, objects = np.unique(names, return_inverse=True)  # the same name twice: the same object
    # each car's images run azimuth-major: disentanglement_lib's einsum("abcde->deabc")
    elevation, azimuth = np.tile(np.arange(elevations), azimuths), np.repeat(
        np.arange(azimuths), elevations)
    classes = np.concatenate([np.column_stack((elevation, azimuth, np.full_like(elevation, k)))
                              for k in objects.reshape(-1)])
    index = grid_order(dataset, classes, f"{paths[0].name}'s data/cars/*.mat")
    out = np.empty((dataset.n_images, *dataset.image_shape), dtype=np.uint8)
    out[index] = np.concatenate(meshes)
    return out


def _car_images(data: bytes, name: str, dataset: FileDataset) -> np.ndarray:
    """One car's 'im' (128, 128, 3, azimuth, elevation) -> (azimuth * elevation, 64, 64, 3)."""
    import scipy.io

    elevations, azimuths, _ = dataset.factor_sizes
    try:
        im = scipy.io.loadmat(io.BytesIO(data))["im"]
    except (ValueError, TypeError, KeyError, NotImplementedError,
            scipy.io.matlab.MatReadError) as err:
        raise DataError(f"data/cars/{name} is not a MATLAB file with an 'im' array "
                        f"({type(err).__name__}: {err}): {_not_published(dataset)}") from None
    want = (CARS_SIZE, CARS_SIZE, 3, azimuths, elevations)
    if im.shape != want or im.dtype != np.uint8:
        raise DataError(f"data/cars/{name}: 'im' is {im.dtype} {im.shape}, expected uint8 "
                        f"{want}: {_not_published(dataset)}")
    renderings = np.moveaxis(im, (3, 4), (0, 1)).reshape(-1, CARS_SIZE, CARS_SIZE, 3)
    return np.stack([resize(r, dataset.image_size) for r in renderings])


def _norb_labels(path: Path, shape: tuple[int | None, ...]) -> np.ndarray:
    """A whole NORB int32 matrix of `shape` (None: any length): a `-cat` or `-info` file."""
    with gzip.open(path) as f:
        dims = _norb_header(f, path, NORB_INT, shape)
        count = int(np.prod(dims))
        return np.frombuffer(_read_exactly(f, path, 4 * count), "<i4").reshape(dims)


def _norb_images(path: Path, n: int, size: int) -> np.ndarray:
    """Camera 0 of a NORB `-dat` file's n stereo pairs, each resized to size x size."""
    out = np.empty((n, size, size), dtype=np.uint8)
    record = 2 * NORB_SIZE * NORB_SIZE
    with gzip.open(path) as f:
        _norb_header(f, path, NORB_BYTE, (n, 2, NORB_SIZE, NORB_SIZE))
        for start in range(0, n, _CHUNK):
            count = min(_CHUNK, n - start)
            pairs = np.frombuffer(_read_exactly(f, path, count * record), np.uint8)
            for i, pair in enumerate(pairs.reshape(count, 2, NORB_SIZE, NORB_SIZE)):
                # as disentanglement_lib reads the bytes ('int8'): Pillow resamples that in mode I
                out[start + i] = resize(pair[0].view(np.int8), size)
    return out


def _norb_header(f: IO[bytes], path: Path, magic: int,
                 shape: tuple[int | None, ...]) -> tuple[int, ...]:
    """Read a NORB matrix's header: its dimensions, DataError unless of `magic` and `shape`."""
    got, ndim = np.frombuffer(_read_exactly(f, path, 8), "<i4")
    if got != magic or ndim != len(shape):
        raise DataError(f"{path.name}: a NORB matrix of type {int(got):#x} with {ndim} "
                        f"dimensions, expected {magic:#x} with {len(shape)}: not a smallNORB "
                        "file of its kind")
    dims = tuple(int(d) for d in np.frombuffer(_read_exactly(f, path, 4 * max(3, ndim)), "<i4"))
    if any(want is not None and want != d for want, d in zip(shape, dims, strict=False)):
        raise DataError(f"{path.name}: a NORB matrix {dims[:ndim]}, expected {shape}")
    return dims[:ndim]


def _read_exactly(f: IO[bytes], path: Path, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise DataError(f"{path.name} ends early: the file is truncated")
    return data


def _not_published(dataset: FileDataset) -> str:
    return (f"not the published {dataset.name} files; delete them and run `wae-study data "
            f"fetch {dataset.name}` again")


_NORB_URL = "https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/smallnorb-{}-{}.mat.gz"
_NORB_RECORDS = {  # TensorFlow Datasets' size and SHA-256 of each, by its address's name
    "5x46789x9x18x6x2x96x96-training": {
        "dat": (131_896_188, "5ffd6272a07d32695ee1082a26a41a93a37aab8c28da047f8c34ed348d214873"),
        "cat": (348, "2784e542c1922060691090952b6cd6278879a216c90f81476f0f00256d42cdaa"),
        "info": (71_052, "de7eb932ebe7a4ee16217fead60660d0eb3d23632c2f4d1c51f88c501c17bf32")},
    "5x01235x9x18x6x2x96x96-testing": {
        "dat": (130_799_817, "cf7104eed3e51174d2f65b66d1e5878b9da233b886f161b0d88f4510ba2c7474"),
        "cat": (347, "ecaf6d5bb8c3bc5eab9cf0258f6d2198dd474e016e374836fc097f2e5ff509ff"),
        "info": (10_428, "16adf314226327ee006d1a44db8cfef52773c06c829951d5653a9f6f310248a2")},
}
CONVERSIONS: dict[str, Conversion] = {
    "smallnorb": Conversion(
        sources=tuple(Source(url=_NORB_URL.format(chunk, kind), size=size, digest=digest,
                             recorded_by="TensorFlow Datasets")
                      for chunk, files in _NORB_RECORDS.items()
                      for kind, (size, digest) in files.items()),
        convert=smallnorb),
    "cars3d": Conversion(
        sources=(Source(url="http://www.scottreed.info/files/nips2015-analogy-data.tar.gz",
                        size=None, digest="4e866a7919c1beedf53964e6f7a23686", algorithm="md5",
                        recorded_by="disent (nmichlo/disent)"),),
        convert=cars3d),
}
