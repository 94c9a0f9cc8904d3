"""The data layer: loaders for the three file kinds, validation, packing, splits, sampling."""

from __future__ import annotations

import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from trainables import data, factors
from trainables.datasets import unpack_rows

N = factors.N_IMAGES


def _blank_images(f: h5py.File, marks: dict[int, int]) -> None:
    """A full-size `imgs` dataset that is zero except pixel (0, 0) of the given images."""
    imgs = f.create_dataset("imgs", shape=(N, 64, 64), dtype=np.uint8, chunks=(4096, 64, 64),
                            compression="gzip", compression_opts=1, fillvalue=0)
    for index, value in marks.items():
        imgs[index, 0, 0] = value


def write_hdf5(path: Path, *, marks: dict[int, int] | None = None, classes=None) -> Path:
    with h5py.File(path, "w") as f:
        _blank_images(f, marks or {})
        f["latents/classes"] = factors.all_classes() if classes is None else classes
        f["latents/values"] = factors.all_values()
    return path


def write_npz(path: Path, *, marks: dict[int, int] | None = None) -> Path:
    """An official-layout .npz, streamed so the 3 GB image array never sits in memory."""
    marks = marks or {}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, array in (("latents_classes", factors.all_classes()),
                            ("latents_values", factors.all_values())):
            with archive.open(f"{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, array)
        with archive.open("imgs.npy", "w", force_zip64=True) as f:
            header = {"descr": "|u1", "fortran_order": False, "shape": (N, 64, 64)}
            np.lib.format.write_array_header_2_0(f, header)
            block = 32_768
            for start in range(0, N, block):
                chunk = np.zeros((block, 64, 64), dtype=np.uint8)
                for index, value in marks.items():
                    if start <= index < start + block:
                        chunk[index - start, 0, 0] = value
                f.write(chunk.tobytes())
        with archive.open("metadata.npy", "w") as f:
            f.write(b"never read")
    return path


MARKS = {0: 1, 12_345: 1, N - 1: 1}


@pytest.fixture(scope="module")
def official_npz(tmp_path_factory) -> Path:
    """A full-size official .npz with MARKS, written once (seconds): loaded, and cut."""
    return write_npz(tmp_path_factory.mktemp("npz") / "dsprites.npz", marks=MARKS)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["hdf5", "npz"])
def test_official_layouts_load_and_pack(tmp_path, kind, request):
    path = (request.getfixturevalue("official_npz") if kind == "npz"
            else write_hdf5(tmp_path / "dsprites.hdf5", marks=MARKS))
    dataset = data.load(path)
    assert dataset.packed.shape == (N, 512)
    on = np.flatnonzero(np.unpackbits(dataset.packed[:, :1], axis=-1)[:, 0])
    assert on.tolist() == [0, 12_345, N - 1]
    assert dataset.images(np.array([12_345]))[0, 0, 0] == 1


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.with_suffix(".h5"), "not found"),
        (lambda p: (p.with_suffix(".txt").write_text("x"), p.with_suffix(".txt"))[1],
         "unknown data file extension"),
        (lambda p: (p.with_suffix(".h5").write_bytes(b"\x89HDF\r\n garbage"),
                    p.with_suffix(".h5"))[1], "truncated or corrupt"),
        (lambda p: (p.with_suffix(".npz").write_bytes(b"PK\x03\x04 broken"),
                    p.with_suffix(".npz"))[1], "truncated or corrupt"),
    ],
    ids=["missing", "extension", "corrupt-hdf5", "corrupt-npz"],
)
def test_unreadable_files_are_refused(tmp_path, make, message):
    with pytest.raises(data.DataError, match=message):
        data.load(make(tmp_path / "bad"))


def test_wrong_shapes_are_refused(tmp_path):
    path = tmp_path / "small.h5"
    with h5py.File(path, "w") as f:
        f["imgs"] = np.zeros((10, 64, 64), np.uint8)
        f["latents/classes"] = factors.all_classes()
        f["latents/values"] = factors.all_values()
    with pytest.raises(data.DataError, match="expected uint8"):
        data.load(path)


def test_wrong_ordering_is_refused(tmp_path):
    classes = factors.all_classes()
    classes[[5, 6]] = classes[[6, 5]]
    path = write_hdf5(tmp_path / "shuffled.h5", classes=classes)
    with pytest.raises(data.DataError, match="ordering at image 5"):
        data.load(path)


def test_pixel_values_outside_zero_one_are_refused(tmp_path):
    path = write_hdf5(tmp_path / "twos.h5", marks={70_000: 2})
    with pytest.raises(data.DataError, match="image 70000 has pixel values outside"):
        data.load(path)


@pytest.mark.slow
def test_truncated_npz_is_refused(tmp_path, official_npz):
    cut = tmp_path / "cut.npz"
    cut.write_bytes(official_npz.read_bytes()[: official_npz.stat().st_size // 2])
    with pytest.raises(data.DataError, match="truncated or corrupt"):
        data.load(cut)


def test_split_is_seeded_disjoint_and_ninety_ten():
    dataset = data.DSprites(np.zeros((N, 512), np.uint8))
    a, b = dataset.split(seed=3), dataset.split(seed=3)
    assert np.array_equal(a.test, b.test) and np.array_equal(a.train, b.train)
    assert len(a.test) == round(0.1 * N) and len(a.train) + len(a.test) == N
    assert np.intersect1d(a.train, a.test).size == 0
    assert not np.array_equal(a.test, dataset.split(seed=4).test)


def test_sampling_and_index_round_trip():
    dataset = data.DSprites(np.zeros((N, 512), np.uint8))
    classes = dataset.sample_classes(5000, np.random.default_rng(0))
    assert classes.shape == (5000, 6)
    assert (classes.max(axis=0) < np.array(factors.FACTOR_SIZES)).all()
    assert np.array_equal(dataset.classes_of(dataset.index_of(classes)), classes)
    assert dataset.index_of(np.array([[0, 2, 5, 39, 31, 31]]))[0] == N - 1


def test_unpack_rows_matches_numpy():
    rows = np.random.default_rng(0).integers(0, 256, (7, 512), dtype=np.uint8)
    expected = np.unpackbits(rows, axis=-1).astype(np.float32)
    assert np.array_equal(unpack_rows(torch.from_numpy(rows)).numpy(), expected)


@pytest.mark.slow
def test_generated_file_round_trips(dsprites):
    from trainables import render

    assert dsprites.packed.shape == (N, 512)
    block_start, block = next(render.iter_blocks())
    assert np.array_equal(dsprites.images(np.arange(block_start, block_start + 100)),
                          block[:100])


def test_validated_bits_are_kept_until_the_file_changes(tmp_path, monkeypatch):
    """The second load of an unchanged file reads the kept packed bits, not the file; a
    file whose size or modification time changed is read and validated again."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(factors, "N_IMAGES", 10)  # a small stand-in set
    reads = []

    def read(path):
        reads.append(path)
        return np.full((10, data.PACKED_BYTES), len(reads), dtype=np.uint8)

    monkeypatch.setattr(data, "_read_hdf5", read)
    path = tmp_path / "set.h5"
    path.write_bytes(b"stand-in")
    first = data.read_packed(path)
    again = data.read_packed(path)
    assert len(reads) == 1 and np.array_equal(first, again)
    data.read_packed(path, cached=False)  # `data verify`: the file itself, always
    assert len(reads) == 2
    array, record = data.packed_cache(path)
    assert array.is_file() and record.is_file()

    path.write_bytes(b"another file")  # a new size and modification time
    assert data.read_packed(path)[0, 0] == 3 and len(reads) == 3
    record.write_text("not json")  # an unreadable record is a miss, never an error
    assert data.read_packed(path)[0, 0] == 4 and len(reads) == 4


def test_a_file_that_fails_validation_is_never_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def refuse(path):
        raise data.DataError("not dSprites")

    monkeypatch.setattr(data, "_read_hdf5", refuse)
    path = tmp_path / "bad.h5"
    path.write_bytes(b"x")
    with pytest.raises(data.DataError):
        data.read_packed(path)
    assert not any(p.exists() for p in data.packed_cache(path))
