"""smallnorb and cars3d, whose published files are converted (`trainables.converted`): small
files in the published layouts (NORB's binary matrices, gzipped; a tar.gz of MATLAB files)
over small factor grids, stored out of grid order, served on loopback: fetched, refused on a
wrong checksum, converted into the grid's order with disentanglement_lib's resizing, verified,
loaded, and refused when a grid cell is missing or doubled."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from study.cli import main
from trainables import converted, data, image_files
from trainables.datasets import CARS3D, DATASETS, SMALLNORB, FileDataset

from .test_fetch import Server

TINY_NORB = dataclasses.replace(SMALLNORB, factor_sizes=(2, 2, 2, 3, 2))  # 48 cells
TINY_CARS = dataclasses.replace(CARS3D, factor_sizes=(2, 3, 4))  # 24 cells
Edit = Callable[[list], list]  # rearranges a file's records (NORB) or cars (Cars3D)


def cells(dataset: FileDataset) -> np.ndarray:
    """Every cell's factor classes, (n, factors), in the grid's row-major order."""
    return np.indices(dataset.factor_sizes).reshape(len(dataset.factor_sizes), -1).T


def patch(index: int, shape: tuple[int, ...]) -> np.ndarray:
    """A random patch for the bottom-right quarter of cell `index`'s image: its resizing
    tells Pillow's modes and filters apart; the top-left corner keeps the cell's value."""
    return np.random.default_rng(index).integers(0, 256, shape, dtype=np.uint8)


def norb_value(index: int) -> int:
    return 5 * index + 3  # distinct per cell of TINY_NORB's 48


def norb_camera0(index: int) -> np.ndarray:
    image = np.full((96, 96), norb_value(index), dtype=np.uint8)
    image[48:, 48:] = patch(index, (48, 48))
    return image


def norb_matrix(magic: int, array: np.ndarray) -> bytes:
    """NORB's binary matrix: magic, ndim, the dimensions (at least 3, padded with 1), data."""
    dims = [*array.shape, *[1] * (3 - array.ndim)]
    return gzip.compress(np.array([magic, array.ndim, *dims], "<i4").tobytes()
                         + array.tobytes(), compresslevel=1)


def norb_files(edit: Edit = lambda rows: rows) -> dict[str, bytes]:
    """The six published files over TINY_NORB, each set's records in a shuffled order:
    instance 1 in the training set, 0 in the testing set (as the published split instances);
    `edit` changes the training set's records."""
    classes, names = cells(TINY_NORB), [name for name, _ in converted.sources_for("smallnorb")]
    files = {}
    for names_of_set, instance in ((names[:3], 1), (names[3:], 0)):
        rows = list(np.random.default_rng(instance).permutation(
            np.flatnonzero(classes[:, 1] == instance)))
        rows = np.array(edit(rows) if instance == 1 else rows)
        pairs = np.stack([np.stack([norb_camera0(i), 255 - norb_camera0(i)]) for i in rows])
        info = classes[rows, 1:] * (1, 1, 2, 1)  # azimuth stored as 0, 2, 4, ...
        for name, magic, array in zip(names_of_set, (converted.NORB_BYTE, converted.NORB_INT,
                                                     converted.NORB_INT),
                                      (pairs, classes[rows, 0], info), strict=True):
            files[name] = norb_matrix(magic, np.ascontiguousarray(array, dtype=(
                np.uint8 if magic == converted.NORB_BYTE else "<i4")))
    return files


def car_rendering(index: int) -> np.ndarray:
    elevation, azimuth, car = cells(TINY_CARS)[index]
    image = np.empty((128, 128, 3), dtype=np.uint8)
    image[:] = (60 * elevation + 20, 40 * azimuth + 10, 50 * car + 5)
    image[64:, 64:] = patch(index, (64, 64, 3))
    return image


def cars_files(edit: Edit = lambda cars: cars) -> dict[str, bytes]:
    """Cars3D's archive over TINY_CARS: data/cars/car_NNN_mesh.mat, each 'im' (128, 128, 3,
    azimuth, elevation), stored out of name order, beside files that are not cars; `edit`
    changes the list of cars."""
    elevations, azimuths, n_cars = TINY_CARS.factor_sizes
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as archive:
        def add(name: str, body: bytes) -> None:
            member = tarfile.TarInfo(name)
            member.size = len(body)
            archive.addfile(member, io.BytesIO(body))

        add("data/cars/list.txt", b"not a car\n")
        add("data/shapes48.mat", b"not a car either")
        for car in edit([3, 1, 0, 2]):
            im = np.empty((128, 128, 3, azimuths, elevations), dtype=np.uint8)
            for elevation in range(elevations):
                for azimuth in range(azimuths):
                    index = (elevation * azimuths + azimuth) * n_cars + car
                    im[:, :, :, azimuth, elevation] = car_rendering(index)
            mat = io.BytesIO()
            scipy.io.savemat(mat, {"im": im})
            add(f"data/cars/car_{car:03d}_mesh.mat", mat.getvalue())
    return {"nips2015-analogy-data.tar.gz": buffer.getvalue()}


def disentanglement_lib_images(name: str) -> np.ndarray:
    """The grid's images resized as disentanglement_lib's code does it (Pillow's ANTIALIAS is
    LANCZOS): NORB's bytes as int8 `resize`d, Cars3D's `thumbnail`ed; clipped to uint8."""
    if name == "smallnorb":
        return np.stack([np.clip(np.asarray(Image.fromarray(norb_camera0(i).view(np.int8))
                                            .resize((64, 64), Image.LANCZOS)), 0, 255)
                         for i in range(TINY_NORB.n_images)]).astype(np.uint8)[..., None]
    out = []
    for i in range(TINY_CARS.n_images):
        picture = Image.fromarray(car_rendering(i))
        picture.thumbnail((64, 64), Image.LANCZOS)
        out.append(np.asarray(picture))
    return np.stack(out)


CASES = {"smallnorb": (TINY_NORB, norb_files), "cars3d": (TINY_CARS, cars_files)}


def write(folder: Path, files: dict[str, bytes]) -> list[Path]:
    for name, body in files.items():
        (folder / name).write_bytes(body)
    return [folder / name for name in files]


@pytest.mark.parametrize("name", CASES)
def test_the_published_layout_converts_into_the_grids_order(tmp_path, monkeypatch, name):
    tiny, files = CASES[name]
    monkeypatch.setitem(DATASETS, name, tiny)
    out = tmp_path / tiny.file_name
    assert converted.convert(name, write(tmp_path, files()), out) == tiny.n_images
    stored = image_files.read(out, tiny)
    np.testing.assert_array_equal(stored, disentanglement_lib_images(name))
    if name == "smallnorb":  # the test tells Pillow's 32-bit mode from its 8-bit one
        modes = [np.asarray(Image.fromarray(norb_camera0(i)).resize((64, 64), Image.LANCZOS))
                 for i in range(tiny.n_images)]
        assert not np.array_equal(stored[..., 0], np.stack(modes))
    grid = data.load(out, dataset=name)
    classes = grid.sample_classes(40, np.random.default_rng(2))
    corner = np.round(grid.images_for(classes)[:, 0, 0] * 255).astype(int)  # (40, channels)
    if name == "smallnorb":
        np.testing.assert_array_equal(corner[:, 0], norb_value(grid.index_of(classes)))
    else:
        np.testing.assert_array_equal(corner, classes * (60, 40, 50) + (20, 10, 5))


def _drop_first(items: list) -> list:
    return items[1:]


def _double_first(items: list) -> list:
    return [items[0], *items[1:-1], items[0]]


def _first_twice(items: list) -> list:
    return [items[0], *items]


@pytest.mark.parametrize(("name", "edit", "message"), [
    ("smallnorb", _drop_first, "0 cells of the factor grid have more than one image and 1 none"),
    ("smallnorb", _double_first, "1 cells of the factor grid have more than one image and 1 none"),
    ("cars3d", _drop_first, "0 cells of the factor grid have more than one image and 6 none"),
    ("cars3d", _first_twice, "6 cells of the factor grid have more than one image and 0 none"),
])
def test_a_missing_or_doubled_grid_cell_is_refused(tmp_path, monkeypatch, name, edit, message):
    tiny, files = CASES[name]
    monkeypatch.setitem(DATASETS, name, tiny)
    out = tmp_path / tiny.file_name
    with pytest.raises(data.DataError, match=message):
        converted.convert(name, write(tmp_path, files(edit)), out)
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))


def test_a_norb_matrix_of_another_kind_is_refused(tmp_path, monkeypatch):
    monkeypatch.setitem(DATASETS, "smallnorb", TINY_NORB)
    files = norb_files()
    cat = next(name for name in files if name.endswith("training-cat.mat.gz"))
    files[cat] = norb_matrix(converted.NORB_BYTE, np.zeros(24, dtype=np.uint8))
    with pytest.raises(data.DataError, match="a NORB matrix of type 0x1e3d4c55 with 1"):
        converted.convert("smallnorb", write(tmp_path, files), tmp_path / "smallnorb.npz")


def _record(name: str, files: dict[str, bytes]) -> converted.Conversion:
    """Dataset `name`'s conversion with its records made for `files` (the tests' files)."""
    conversion = converted.CONVERSIONS[name]
    sources = []
    for (file_name, _), source in zip(converted.sources_for(name), conversion.sources,
                                      strict=True):
        body = files[file_name]
        sources.append(dataclasses.replace(
            source, size=len(body) if source.size is not None else None,
            digest=hashlib.new(source.algorithm, body).hexdigest()))
    return dataclasses.replace(conversion, sources=tuple(sources))


def _serve(files: dict[str, bytes]) -> tuple[Server, str]:
    """A loopback mirror and its --url: the file's address for one, the folder's for several."""
    mirror = Server({f"/mirror/{name}": body for name, body in files.items()})
    return mirror, mirror.url + "/mirror" + ("" if len(files) > 1 else f"/{next(iter(files))}")


@pytest.mark.parametrize("name", CASES)
def test_data_fetch_downloads_checks_converts_and_verifies(tmp_path, monkeypatch, capsys, name):
    """`wae-study data fetch NAME` from a loopback mirror: refused (exit 2, nothing left) when
    a file differs from its record; with the records, converted, verified, loaded and shown;
    run again, it converts the downloads it kept without asking the server."""
    tiny, make = CASES[name]
    files = make()
    monkeypatch.setitem(DATASETS, name, tiny)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    mirror, url = _serve(files)
    try:
        assert main(["data", "fetch", name, "--url", url]) == 2
        assert "is not the expected one" in capsys.readouterr().err
        assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
        monkeypatch.setitem(converted.CONVERSIONS, name, _record(name, files))
        assert main(["data", "fetch", name, "--url", url]) == 0
        said = capsys.readouterr().out
        assert said.count("fetched ") == len(files) and "ok: " in said
        assert f"converted {tiny.n_images} images" in said
        asked = len(mirror.ranges)
        assert main(["data", "fetch", name, "--url", url]) == 0
        assert capsys.readouterr().out.count("kept ") == len(files)
        assert len(mirror.ranges) == asked
    finally:
        mirror.close()
    np.testing.assert_array_equal(data.load(dataset=name).stored, disentanglement_lib_images(name))
    shown = tmp_path / "shown.png"
    assert main(["data", "show", str(data.fetched_path(name)), "--out", str(shown)]) == 0
    assert shown.stat().st_size > 1000


def test_a_failed_conversion_keeps_the_checked_downloads(tmp_path, monkeypatch, capsys):
    files = norb_files(_double_first)
    monkeypatch.setitem(DATASETS, "smallnorb", TINY_NORB)
    monkeypatch.setitem(converted.CONVERSIONS, "smallnorb", _record("smallnorb", files))
    mirror, url = _serve(files)
    out = tmp_path / "smallnorb.npz"
    try:
        assert main(["data", "fetch", "smallnorb", "--url", url, "--out", str(out)]) == 2
    finally:
        mirror.close()
    assert "have more than one image" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(files)
