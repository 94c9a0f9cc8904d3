"""The datasets in memory: loading and validating files, the stored form, splits and sampling.

`GroundTruthImages` is what the metrics and the trainer read: a factor grid, its images as
a dataset (`trainables.datasets`) shows them, seeded splits. Its stored array is put in Ray's
object store once per machine and every trial wraps it without copying (`wrap`); batches
become pixels on the training device (`Dataset.stored_pixels`). dSprites and its variants
(`DSprites`) hold dSprites as packed bits (737,280 × 512 bytes ≈ 377 MB); a dataset with a
file of its own (`ImageGrid`) its uint8 pixels, read by `trainables.image_files`.

Three files load: the official `.npz` (its pickled `metadata` is never read: the grid is
known), the official `.hdf5`, and the file `wae-study data generate` writes (same layout).
Reading and validating one takes seconds (3 GB of pixels, gzip-compressed in the generated
file); the validated packed bits are kept in the user cache (`packed_cache`), so a file that
has not changed since loads in a fraction of a second.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trainables import factors, fetch, image_files, render
from trainables.datasets import (
    DATASETS,
    DSPRITES,
    Dataset,
    FileDataset,
    ScreamDSprites,
    indexed_uniform,
)
from trainables.experiment import replacing, write_atomic
from trainables.image_files import DataError

PACKED_BYTES = factors.IMAGE_SIZE * factors.IMAGE_SIZE // 8  # 512 bytes per image
_CHUNK = 40_960  # images per read while loading: 160 MB of uint8 at a time
SUFFIXES = (".npz", ".hdf5", ".h5")
VALIDATION_STREAM = 0x76616C  # "val": the stream that parts the held-out images



@dataclass(frozen=True)
class Split:
    """A seeded split of image indices (each sorted): train, and the held-out images parted
    into test and validation (empty unless asked for)."""

    seed: int
    test_fraction: float
    train: np.ndarray
    test: np.ndarray
    validation: np.ndarray = field(
        default_factory=lambda: np.zeros(0, dtype=np.int64))


class GroundTruthImages:
    """A dataset's stored images over its factor grid, in row-major order (the last factor
    fastest), as `dataset` shows them: the data interface the metrics and the trainer read.
    `stored` is the array a study puts in Ray's object store once and every trial wraps
    (`wrap`) without copying."""

    def __init__(self, stored: np.ndarray, source: str, dataset: Dataset) -> None:
        self.stored = stored
        self.source = source
        self.dataset = dataset
        self.factor_names: tuple[str, ...] = dataset.factor_names
        self.factor_sizes: tuple[int, ...] = dataset.factor_sizes
        self.bases = np.array([int(np.prod(self.factor_sizes[i + 1:]))
                               for i in range(len(self.factor_sizes))], dtype=np.int64)

    @property
    def latent_factors(self) -> tuple[int, ...]:
        """The ground-truth factors the metrics score (a dataset's nuisance ones left out)."""
        return self.dataset.latent_factors

    @property
    def tasks(self) -> dict[str, tuple[int, ...]]:
        """The Higgins tasks: name -> the factors voted on."""
        return dict(self.dataset.tasks)

    @property
    def n(self) -> int:
        return int(self.stored.shape[0])

    def images(self, indices: np.ndarray) -> np.ndarray:
        """The images a model is shown for flat indices."""
        raise NotImplementedError

    def images_for(self, classes: np.ndarray) -> np.ndarray:
        """`images` for rows of factor classes (n, factors)."""
        return self.images(self.index_of(classes))

    def sample_classes(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n factor-class vectors drawn uniformly over the grid, (n, factors) int64."""
        return np.stack([rng.integers(0, size, n) for size in self.factor_sizes], axis=1)

    def index_of(self, classes: np.ndarray) -> np.ndarray:
        """Flat image index of each row of factor classes (n, factors) -> (n,)."""
        return np.asarray(classes, dtype=np.int64) @ self.bases

    def classes_of(self, indices: np.ndarray) -> np.ndarray:
        """Factor classes (n, factors) of flat image indices; inverse of `index_of`."""
        indices = np.asarray(indices, dtype=np.int64)
        return (indices[:, None] // self.bases) % np.asarray(self.factor_sizes, dtype=np.int64)

    def split(self, seed: int, test_fraction: float = 0.1,
              validation_fraction: float = 0.0) -> Split:
        """The seeded random train/test split of all images (the paper: 90/10), and
        `validation_fraction` of the held-out images set aside for validation. Validation
        comes from the held-out images, never the training ones: the training images (and so
        every trained model) are the same whatever `validation_fraction` is."""
        if not 0.0 < test_fraction < 1.0:
            raise DataError(f"test_fraction must be in (0, 1), got {test_fraction}")
        if not 0.0 <= validation_fraction < 1.0:
            raise DataError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
        order = np.random.default_rng(seed).permutation(self.n)
        n_test = int(round(self.n * test_fraction))
        held = order[:n_test]
        n_validation = int(round(n_test * validation_fraction))
        if n_validation:  # its own stream of the split's seed: the train/test draw is unchanged
            held = np.random.default_rng([seed, VALIDATION_STREAM]).permutation(held)
        return Split(seed, test_fraction, np.sort(order[n_test:]), np.sort(held[n_validation:]),
                     np.sort(held[:n_validation]))


class DSprites(GroundTruthImages):
    """The dSprites images in packed-bit form, indexed in the official order, as one of the
    datasets built on them (`trainables.datasets`: dsprites, its variants) shows them."""

    def __init__(self, packed: np.ndarray, source: str = "",
                 dataset: Dataset = DSPRITES) -> None:
        if packed.shape != (factors.N_IMAGES, PACKED_BYTES) or packed.dtype != np.uint8:
            raise DataError(
                f"packed dSprites must be uint8 {(factors.N_IMAGES, PACKED_BYTES)}, got "
                f"{packed.dtype} {packed.shape}: build it with trainables.data.load()"
            )
        if dataset.base != DSPRITES.base:
            raise DataError(f"dataset {dataset.name} is not built on dSprites' images")
        super().__init__(packed, source, dataset)

    @property
    def packed(self) -> np.ndarray:
        """The bits, (737,280, 512) uint8."""
        return self.stored

    def images(self, indices: np.ndarray) -> np.ndarray:
        """dSprites' own images (and a variant's that shows them as stored) as uint8
        (n, 64, 64) with values {0, 1}; another variant's as float32 (n, 64, 64, channels) in
        [0, 1], their colour or noise fixed per image (`datasets.indexed_uniform`)."""
        indices = np.asarray(indices, dtype=np.int64)
        bits = np.unpackbits(self.packed[indices], axis=-1)
        if self.dataset.as_stored:
            return bits.reshape(-1, factors.IMAGE_SIZE, factors.IMAGE_SIZE)
        import torch  # here: the data layer is read by commands that never train (no torch)

        index = torch.from_numpy(indices)
        seen = self.dataset.observe(torch.from_numpy(bits).float(),
                                    lambda count: indexed_uniform(index, count))
        return seen.numpy().reshape(-1, *self.dataset.image_shape)


class ImageGrid(GroundTruthImages):
    """A dataset with a file of its own (`datasets.FileDataset`): uint8 pixels (N, H, W, C)."""

    def __init__(self, pixels: np.ndarray, source: str, dataset: FileDataset) -> None:
        want = (dataset.n_images, *dataset.image_shape)
        if pixels.shape != want or pixels.dtype != np.uint8:
            raise DataError(f"{dataset.name} images must be uint8 {want}, got {pixels.dtype} "
                            f"{pixels.shape}: load them with trainables.data.load()")
        super().__init__(pixels, source, dataset)

    def images(self, indices: np.ndarray) -> np.ndarray:
        """float32 images (n, H, W, C) in [0, 1]."""
        return self.stored[np.asarray(indices, dtype=np.int64)].astype(np.float32) / 255.0


def wrap(stored: np.ndarray, dataset: str, painting: np.ndarray | None = None
         ) -> GroundTruthImages:
    """The data object over a stored array (a trial's, from the object store), and for
    scream_dsprites its painting (`painting_of` the loaded data)."""
    spec = DATASETS[dataset]
    if isinstance(spec, FileDataset):
        return ImageGrid(stored, "", spec)
    if isinstance(spec, ScreamDSprites):
        if painting is None:
            raise DataError(f"{dataset} needs its painting beside the stored images")
        spec = dataclasses.replace(spec, painting=painting)
    return DSprites(stored, dataset=spec)


def painting_of(data: GroundTruthImages) -> np.ndarray | None:
    """The painting a dataset shows its images on (scream_dsprites'), else None: what a trial
    needs beside the stored array."""
    return data.dataset.painting if isinstance(data.dataset, ScreamDSprites) else None


def painting_path(dataset: ScreamDSprites) -> Path:
    """Where `wae-study data fetch scream_dsprites` puts the painting (`<cache>/scream.jpg`)."""
    return cache_dir() / dataset.painting_file


def painting_source(data: GroundTruthImages) -> Path | None:
    """The painting file the loaded data shows its images on (scream_dsprites'), else None:
    what provenance fingerprints beside the dataset's file."""
    return painting_path(data.dataset) if isinstance(data.dataset, ScreamDSprites) else None


def cache_dir() -> Path:
    """The user cache folder the data files live in by default."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "wae-study"


def default_path() -> Path:
    """Where the generated file lives: `$WAE_STUDY_DATA`, else the user cache folder."""
    if os.environ.get("WAE_STUDY_DATA"):
        return Path(os.environ["WAE_STUDY_DATA"]).expanduser()
    return cache_dir() / "dsprites_generated.h5"


def fetched_path(dataset: str) -> Path:
    """Where `wae-study data fetch NAME` puts a dataset's own file (`<cache>/<file name>`)."""
    return cache_dir() / DATASETS[dataset].file_name


def official_path() -> Path:
    """Where `wae-study data fetch` puts the official file by default (`--data official`)."""
    return cache_dir() / fetch.FILE_NAME


def load(path: str | os.PathLike | None = None, cached: bool = True,
         dataset: str = DSPRITES.name) -> GroundTruthImages:
    """Load and validate `dataset` (a name in `trainables.datasets.DATASETS`) from its file at
    `path`. `None` means its default file: for dSprites and its variants the generated one
    (rendered if missing), for the others the one `wae-study data fetch NAME` downloads.
    `cached=False` reads and validates a dSprites file itself even when its bits are kept."""
    if dataset not in DATASETS:
        raise DataError(f"unknown dataset {dataset!r}: choose one of {', '.join(DATASETS)}")
    spec = DATASETS[dataset]
    if isinstance(spec, FileDataset):
        path = Path(path) if path is not None else fetched_path(dataset)
        return ImageGrid(image_files.read(path, spec), str(path), spec)
    if isinstance(spec, ScreamDSprites):
        spec = dataclasses.replace(spec, painting=image_files.read_painting(
            painting_path(spec), spec))
    if path is None:
        path = default_path()
        if not path.exists():
            render.write_hdf5(path)
    path = Path(path)
    return DSprites(read_packed(path, cached), source=str(path), dataset=spec)


def check_path(path: Path) -> None:
    """DataError unless `path` exists with a dSprites extension: the checks that need not
    read the file (`wae-study run` makes them before Ray starts)."""
    if not path.exists():
        raise DataError(
            f"data file not found: {path}; run `wae-study data generate` or pass the path "
            "of the official dSprites .npz/.hdf5"
        )
    if path.suffix not in SUFFIXES:
        raise DataError(
            f"unknown data file extension '{path.suffix}' ({path}); expected one of "
            f"{', '.join(SUFFIXES)}"
        )


def check_source(path: str | os.PathLike | None, dataset: str) -> None:
    """DataError unless the file `dataset` would be loaded from (`path`, else its default)
    is there, without reading it: what `wae-study run` checks before Ray starts. The default
    dSprites file is rendered when missing, so only a given path is checked for dSprites;
    scream_dsprites' painting is read (milliseconds), so a bad one stops the run here too."""
    spec = DATASETS[dataset]
    if isinstance(spec, FileDataset):
        image_files.check_exists(Path(path) if path is not None else fetched_path(dataset), spec)
        return
    if isinstance(spec, ScreamDSprites):
        image_files.read_painting(painting_path(spec), spec)  # a few milliseconds
    if path is not None:
        check_path(Path(path))


def read_packed(path: Path, cached: bool = True) -> np.ndarray:
    """Read a dSprites file into packed bits, validating the grid, ordering and pixel values;
    with `cached`, from `packed_cache` when the file is unchanged since it was last read."""
    check_path(path)
    kept = _cached(path) if cached else None
    if kept is not None:
        return kept
    try:
        packed = _read_npz(path) if path.suffix == ".npz" else _read_hdf5(path)
    except DataError:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(
            f"cannot read {path} ({type(err).__name__}: {err}); the file is truncated or "
            "corrupt: download it again or run `wae-study data generate --force`"
        ) from None
    _keep(path, packed)
    return packed


def packed_cache(path: Path) -> tuple[Path, Path]:
    """Where the validated packed bits of a data file are kept (`<cache>/packed/<key>.npy`,
    377 MB) and the record of the file they were read from (size and modification time)."""
    key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    folder = cache_dir() / "packed"
    return folder / f"{key}.npy", folder / f"{key}.json"


def _identity(path: Path) -> dict[str, object]:
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _cached(path: Path) -> np.ndarray | None:
    """The kept packed bits when the file's size and modification time are those they were
    read from; else None (a changed, truncated or replaced file is read and validated anew)."""
    array_path, record_path = packed_cache(path)
    try:
        if json.loads(record_path.read_text()) != _identity(path):
            return None
        # mapped, not read: a report or an evaluation touches a few hundred of its 737,280
        # rows; the file is only ever replaced whole (`_keep`), never written in place
        packed = np.asarray(np.load(array_path, mmap_mode="r", allow_pickle=False))
    except (OSError, ValueError):
        return None
    if packed.shape != (factors.N_IMAGES, PACKED_BYTES) or packed.dtype != np.uint8:
        return None
    return packed


def _keep(path: Path, packed: np.ndarray) -> None:
    """Keep validated packed bits for the next load; a cache that cannot be written (a
    read-only or full disk) only costs the next load its seconds."""
    array_path, record_path = packed_cache(path)
    try:
        array_path.parent.mkdir(parents=True, exist_ok=True)
        record_path.unlink(missing_ok=True)  # never a record beside another file's array
        with replacing(array_path) as tmp, open(tmp, "wb") as f:
            np.save(f, packed, allow_pickle=False)
        write_atomic(record_path, json.dumps(_identity(path)) + "\n")
    except OSError:
        pass


def _read_hdf5(path: Path) -> np.ndarray:
    import h5py

    with h5py.File(path, "r") as f:
        for key in ("imgs", "latents/classes", "latents/values"):
            if key not in f:
                raise DataError(f"{path} has no dataset '{key}': not a dSprites HDF5 file")
        _check_latents(path, f["latents/classes"][()], f["latents/values"][()])
        imgs = f["imgs"]
        _check_images_header(path, imgs.shape, imgs.dtype)
        return _pack_chunks(path, (imgs[i : i + _CHUNK] for i in range(0, imgs.shape[0], _CHUNK)))


def _read_npz(path: Path) -> np.ndarray:
    # Streams `imgs.npy` out of the zip so the 3 GB uint8 array is never held whole, and never
    # touches `metadata` (the only pickle in the official file).
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        for key in ("imgs", "latents_classes", "latents_values"):
            if f"{key}.npy" not in names:
                raise DataError(f"{path} has no array '{key}': not a dSprites .npz file")
        with archive.open("latents_classes.npy") as f:
            classes = np.lib.format.read_array(f, allow_pickle=False)
        with archive.open("latents_values.npy") as f:
            values = np.lib.format.read_array(f, allow_pickle=False)
        _check_latents(path, classes, values)
        with archive.open("imgs.npy") as f:
            shape, dtype = image_files.npy_header(path, f)
            _check_images_header(path, shape, dtype)
            return _pack_chunks(path, _npy_chunks(f, shape[0]))


def _npy_chunks(f, n: int):
    size = factors.IMAGE_SIZE * factors.IMAGE_SIZE
    for start in range(0, n, _CHUNK):
        count = min(_CHUNK, n - start)
        buf = f.read(count * size)
        if len(buf) != count * size:
            raise DataError("imgs ends early: the file is truncated; download it again")
        yield np.frombuffer(buf, dtype=np.uint8).reshape(count, factors.IMAGE_SIZE, -1)


def _check_images_header(path: Path, shape: tuple, dtype: np.dtype) -> None:
    want = (factors.N_IMAGES, factors.IMAGE_SIZE, factors.IMAGE_SIZE)
    if tuple(shape) != want or np.dtype(dtype) != np.uint8:
        raise DataError(
            f"{path}: imgs is {np.dtype(dtype)} {tuple(shape)}, expected uint8 {want}: "
            "not the full dSprites set"
        )


def _check_latents(path: Path, classes: np.ndarray, values: np.ndarray) -> None:
    want = (factors.N_IMAGES, len(factors.FACTOR_SIZES))
    if classes.shape != want or not np.issubdtype(classes.dtype, np.integer):
        raise DataError(f"{path}: latents classes are {classes.dtype} {classes.shape}, "
                        f"expected integer {want}")
    if values.shape != want or not np.issubdtype(values.dtype, np.floating):
        raise DataError(f"{path}: latents values are {values.dtype} {values.shape}, "
                        f"expected float {want}")
    if not np.array_equal(classes, factors.all_classes()):
        first = int(np.argmax(np.any(classes != factors.all_classes(), axis=1)))
        raise DataError(
            f"{path}: latents classes differ from the official grid/ordering at image {first}; "
            "the file is not dSprites in the official order"
        )
    if not np.allclose(values, factors.all_values(), rtol=0, atol=1e-6):
        raise DataError(f"{path}: latents values differ from the official factor values")


def _pack_chunks(path: Path, chunks) -> np.ndarray:
    packed = np.empty((factors.N_IMAGES, PACKED_BYTES), dtype=np.uint8)
    start = 0
    for chunk in chunks:
        if chunk.size and chunk.max() > 1:
            bad = start + int(np.argmax(chunk.reshape(len(chunk), -1).max(axis=1) > 1))
            raise DataError(f"{path}: image {bad} has pixel values outside {{0, 1}}")
        packed[start : start + len(chunk)] = np.packbits(chunk.reshape(len(chunk), -1), axis=-1)
        start += len(chunk)
    if start != factors.N_IMAGES:
        raise DataError(f"{path}: read {start} images, expected {factors.N_IMAGES}: truncated")
    return packed
