"""The datasets with files of their own (shapes3d's HDF5, MPI3D's .npz), each format against a
small file in the published layout over a small factor grid: read, validated, refused when
wrong, fetched from a loopback server and verified, and trained on."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from study.cli import main
from trainables import data, fetch, image_files
from trainables.config import TrainConfig
from trainables.datasets import DATASETS, MPI3D, SHAPES3D, FileDataset
from trainables.pack import PackTrainer

from .test_fetch import Server

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# shapes3d's and MPI3D's layouts over small grids (a factor of one class included)
TINY_SHAPES = dataclasses.replace(SHAPES3D, factor_sizes=(2, 1, 3, 2, 2, 2))
TINY_MPI3D = dataclasses.replace(MPI3D["toy"], factor_sizes=(2, 2, 1, 1, 3, 2, 2))


def pixels_of(dataset: FileDataset) -> np.ndarray:
    """Images whose first pixels hold their own index (so order can be checked)."""
    n = dataset.n_images
    out = np.random.default_rng(0).integers(0, 256, (n, *dataset.image_shape), dtype=np.uint8)
    out[:, 0, 0, 0], out[:, 0, 0, 1] = np.arange(n) % 256, np.arange(n) // 256
    return out


def labels_of(dataset: FileDataset) -> np.ndarray:
    """shapes3d-like factor values: each factor's classes as increasing floats, row-major."""
    index = np.arange(dataset.n_images)
    columns, stride = [], dataset.n_images
    for size in dataset.factor_sizes:
        stride //= size
        columns.append(np.linspace(0.1, 0.9, size)[(index // stride) % size])
    return np.stack(columns, axis=1)


def write_shapes(path: Path, dataset: FileDataset = TINY_SHAPES, **changes) -> Path:
    arrays = {"images": pixels_of(dataset), "labels": labels_of(dataset), **changes}
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            f.create_dataset(key, data=value)
    return path


def write_mpi3d(path: Path, dataset: FileDataset = TINY_MPI3D) -> Path:
    np.savez(path, images=pixels_of(dataset))
    return path


@pytest.mark.parametrize(("dataset", "write", "name"), [
    (TINY_SHAPES, write_shapes, "3dshapes.h5"), (TINY_MPI3D, write_mpi3d, "mpi3d_toy.npz")])
def test_a_published_layout_reads_in_its_grid_order(tmp_path, dataset, write, name):
    stored = image_files.read(write(tmp_path / name), dataset)
    np.testing.assert_array_equal(stored, pixels_of(dataset))
    grid = data.ImageGrid(stored, name, dataset)
    classes = grid.sample_classes(50, np.random.default_rng(1))
    index = grid.index_of(classes)
    np.testing.assert_array_equal(grid.classes_of(index), classes)
    images = grid.images(index)
    assert images.dtype == np.float32 and images.shape == (50, 64, 64, 3)
    np.testing.assert_array_equal(np.round(images[:, 0, 0, 0] * 255), index % 256)


@pytest.mark.parametrize(("change", "message"), [
    ({"labels": labels_of(TINY_SHAPES)[::-1]}, "labels of floor_hue do not follow"),
    ({"images": pixels_of(TINY_SHAPES)[:-1]}, "expected uint8 \\(48, 64, 64, 3\\)"),
    ({"images": pixels_of(TINY_SHAPES).astype(np.float32)}, "'images' is float32"),
])
def test_a_file_that_is_not_the_published_one_is_refused(tmp_path, change, message):
    with pytest.raises(data.DataError, match=message):
        image_files.read(write_shapes(tmp_path / "3dshapes.h5", **change), TINY_SHAPES)


def test_a_truncated_or_missing_file_names_the_fetch_command(tmp_path):
    full = write_mpi3d(tmp_path / "mpi3d_toy.npz")
    cut = tmp_path / "cut.npz"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(data.DataError, match="run `wae-study data fetch mpi3d_toy` again"):
        image_files.read(cut, TINY_MPI3D)
    with pytest.raises(data.DataError, match="run `wae-study data fetch shapes3d`"):
        data.load(tmp_path / "absent.h5", dataset="shapes3d")
    with pytest.raises(data.DataError, match="unknown extension '.npz'"):
        data.check_source(full, "shapes3d")


@pytest.mark.parametrize(("name", "tiny", "write", "algorithm"), [
    ("shapes3d", TINY_SHAPES, write_shapes, "sha256"),
    ("mpi3d_toy", TINY_MPI3D, write_mpi3d, "md5"),
])
def test_data_fetch_downloads_checks_and_verifies_a_dataset(tmp_path, monkeypatch, capsys,
                                                            name, tiny, write, algorithm):
    """`wae-study data fetch NAME` from a loopback mirror: refused (exit 2, nothing left) when
    the file differs from the recorded checksum; with it, moved into place and verified."""
    body = write(tmp_path / DATASETS[name].file_name).read_bytes()
    monkeypatch.setitem(DATASETS, name, tiny)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    mirror = Server({"/file": body})
    try:
        url = ["--url", mirror.url + "/file"]
        recorded = fetch.SOURCES[name]
        assert main(["data", "fetch", name, *url]) == 2
        assert "is not the expected one" in capsys.readouterr().err
        assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
        digest = hashlib.new(algorithm, body).hexdigest()
        monkeypatch.setitem(fetch.SOURCES, name, dataclasses.replace(
            recorded, size=len(body) if recorded.size else None, digest=digest))
        assert main(["data", "fetch", name, *url]) == 0
        said = capsys.readouterr().out
        assert f"{algorithm} {digest[:12]}" in said and "ok: " in said
        assert data.fetched_path(name).read_bytes() == body
        assert data.load(dataset=name).n == tiny.n_images
    finally:
        mirror.close()


@pytest.mark.parametrize("family", ["beta_vae", "wae_gaussian"])
def test_a_pack_trains_on_a_file_dataset_as_its_members_would_alone(family):
    stored = pixels_of(TINY_SHAPES)
    train = np.arange(0, TINY_SHAPES.n_images, 2)
    cfg = dict(family=family, dataset="shapes3d", steps=40, batch_size=8, latent_dim=4,
               encoder_width=32, decoder_width=32)
    pack = PackTrainer(TrainConfig(replicates=3, seed=10, **cfg), stored, train)
    solo = PackTrainer(TrainConfig(replicates=1, seed=11, **cfg), stored, train)
    for trainer in (pack, solo):
        for _ in range(10):
            trainer.train_step()
    for in_pack, alone in zip(pack.params, solo.params, strict=True):
        torch.testing.assert_close(in_pack[1], alone[0], rtol=1e-5, atol=1e-7)
    x = pack.draw_batch().x
    assert x.shape == (3, 8, 64 * 64 * 3) and 0 <= x.min() and x.max() <= 1


def test_data_show_pictures_a_file_dataset_and_a_variant(tmp_path, monkeypatch, dsprites_path):
    monkeypatch.setitem(DATASETS, "shapes3d", TINY_SHAPES)
    shapes = write_shapes(tmp_path / "3dshapes.h5")  # the published name: shapes3d inferred
    assert main(["data", "show", str(shapes), "--out", str(tmp_path / "s.png")]) == 0
    assert main(["data", "show", str(dsprites_path), "--dataset", "noisy_dsprites",
                 "--out", str(tmp_path / "n.png")]) == 0
    import matplotlib.image

    noisy = matplotlib.image.imread(tmp_path / "n.png")
    assert noisy.shape[-1] in (3, 4) and noisy[..., :3].std(axis=-1).mean() > 0.01  # colour
    assert (tmp_path / "s.png").stat().st_size > 1000
