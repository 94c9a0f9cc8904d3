"""Reading the files of the datasets that have their own (`datasets.FileDataset`): shapes3d's
HDF5, MPI3D's `.npz`. A file is checked before its pixels are read (its images' shape and
type against the dataset's factor grid), its factor labels (where it has them) against the
grid's row-major order, and read in chunks into one uint8 array (N, H, W, C). Also
scream_dsprites' painting (`read_painting`)."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import IO

import numpy as np

from trainables.datasets import FileDataset, ScreamDSprites

CHUNK = 20_480  # images per read: 250 MB of 64x64x3 uint8


class DataError(ValueError):
    """A data file is missing, unreadable or not the dataset's; the message names the fix."""


def read(path: Path, dataset: FileDataset) -> np.ndarray:
    """The images of `dataset`'s file at `path`, validated; DataError naming the fix if not."""
    check_exists(path, dataset)
    try:
        if path.suffix == ".npz":
            return _read_npz(path, dataset)
        if path.suffix in (".h5", ".hdf5"):
            return _read_hdf5(path, dataset)
    except DataError:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"cannot read {path} ({type(err).__name__}: {err}); the file is "
                        f"truncated or corrupt: run `wae-study data fetch {dataset.name}` "
                        "again") from None
    raise AssertionError(path)  # check_exists refuses any other extension


def check_exists(path: Path, dataset: FileDataset) -> None:
    """DataError unless `path` is there with the extension of `dataset`'s published file."""
    if not path.exists():
        raise DataError(f"{dataset.name} file not found: {path}; run `wae-study data fetch "
                        f"{dataset.name}` (or pass the path of its {dataset.file_name})")
    suffix = Path(dataset.file_name).suffix
    if path.suffix not in ({".h5", ".hdf5"} if suffix in (".h5", ".hdf5") else {suffix}):
        raise DataError(f"unknown extension '{path.suffix}' of {path}: {dataset.name} is read "
                        f"from its published {dataset.file_name}")


def read_painting(path: Path, dataset: ScreamDSprites) -> np.ndarray:
    """The painting's thumbnail within 350x274 (Pillow's `thumbnail`, as disentanglement_lib
    makes it), RGB, float32 (H, W, 3) in [0, 1]; DataError naming the fix if missing, not an
    image, or too small for a 64x64 patch."""
    from PIL import Image, UnidentifiedImageError

    fetch = f"run `wae-study data fetch {dataset.name}`"
    if not path.is_file():
        raise DataError(f"{dataset.name} needs its painting: {path} not found; {fetch}")
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            image.thumbnail((350, 274))
    except (OSError, UnidentifiedImageError) as err:
        raise DataError(f"cannot read the painting {path} ({err}); {fetch} again") from None
    painting = np.asarray(image, dtype=np.float32) / 255.0
    if min(painting.shape[:2]) <= dataset.image_size:
        raise DataError(f"the painting {path} is {painting.shape[1]}x{painting.shape[0]} after "
                        f"its thumbnail, too small for {dataset.image_size}x"
                        f"{dataset.image_size} patches; {fetch} again")
    return painting


def check_images(path: Path, dataset: FileDataset, shape: tuple, dtype: np.dtype) -> None:
    want = (dataset.n_images, *dataset.image_shape)
    if tuple(shape) != want or np.dtype(dtype) != np.uint8:
        raise DataError(f"{path}: '{dataset.images_key}' is {np.dtype(dtype)} {tuple(shape)}, "
                        f"expected uint8 {want}: not the published {dataset.name} file")


def check_labels(path: Path, dataset: FileDataset, labels: np.ndarray) -> None:
    """Each label column takes as many distinct values as its factor has classes, and the
    rank of each image's value is its class in the grid's row-major order."""
    want = (dataset.n_images, len(dataset.factor_sizes))
    if labels.shape != want:
        raise DataError(f"{path}: '{dataset.labels_key}' is {labels.shape}, expected {want}")
    index = np.arange(dataset.n_images, dtype=np.int64)
    stride = dataset.n_images
    for column, (name, size) in enumerate(zip(dataset.factor_names, dataset.factor_sizes,
                                              strict=True)):
        stride //= size
        values, classes = np.unique(labels[:, column], return_inverse=True)
        if len(values) != size or not np.array_equal(classes, (index // stride) % size):
            raise DataError(f"{path}: the labels of {name} do not follow the factor grid's "
                            f"order ({len(values)} values, expected {size}): not the published "
                            f"{dataset.name} file")


def _read_hdf5(path: Path, dataset: FileDataset) -> np.ndarray:
    import h5py

    with h5py.File(path, "r") as f:
        for key in filter(None, (dataset.images_key, dataset.labels_key)):
            if key not in f:
                raise DataError(f"{path} has no dataset '{key}': not a {dataset.name} file")
        images = f[dataset.images_key]
        check_images(path, dataset, images.shape, images.dtype)
        if dataset.labels_key:
            check_labels(path, dataset, f[dataset.labels_key][()])
        out = np.empty(images.shape, dtype=np.uint8)
        for start in range(0, len(out), CHUNK):
            images.read_direct(out, np.s_[start:start + CHUNK], np.s_[start:start + CHUNK])
        return out


def _read_npz(path: Path, dataset: FileDataset) -> np.ndarray:
    # Never unpickles (allow_pickle=False); the header is checked before the pixels are read.
    with zipfile.ZipFile(path) as archive:
        name = f"{dataset.images_key}.npy"
        if name not in archive.namelist():
            raise DataError(f"{path} has no array '{dataset.images_key}': not a "
                            f"{dataset.name} file")
        with archive.open(name) as f:
            shape, dtype = npy_header(path, f)
            check_images(path, dataset, shape, dtype)
            out = np.empty(shape, dtype=np.uint8)
            flat = out.reshape(len(out), -1)
            for start in range(0, len(out), CHUNK):
                rows = flat[start:start + CHUNK]
                if f.readinto(memoryview(rows).cast("B")) != rows.nbytes:
                    raise DataError(f"{path}: '{dataset.images_key}' ends early: the file is "
                                    f"truncated; run `wae-study data fetch {dataset.name}` again")
            return out


def npy_header(path: Path, f: IO[bytes]) -> tuple[tuple, np.dtype]:
    """The shape and dtype of the .npy array `f` is at the start of (C order only)."""
    read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                   (2, 0): np.lib.format.read_array_header_2_0}.get(np.lib.format.read_magic(f))
    if read_header is None:
        raise DataError(f"{path}: an unsupported .npy format version")
    shape, fortran, dtype = read_header(f)
    if fortran:
        raise DataError(f"{path}: the images are stored in Fortran order; expected C order")
    return shape, dtype
