"""Shared fixtures: the generated dSprites set, rendered once into the default cache, a random
stand-in of the same size, and each parallel test worker's share of the cores; and the order
in which the parallel workers take the test files."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

# The test files of more than ~10 s, longest first, as measured on 2 cores (`make test`,
# --durations): pytest-xdist hands the files out in collection order, so a long file taken
# last would leave one worker busy alone at the end while the other sits idle.
LONGEST_FIRST = ("study/test_run.py", "study/test_pbt.py", "study/test_faults.py",
                 "study/test_cluster.py", "study/test_compare.py", "study/test_s3.py",
                 "study/test_datasets_study.py", "trainables/test_pack.py",
                 "metrics/test_metrics.py", "trainables/test_data.py",
                 "benchmarks/test_gpu_check.py", "trainables/test_trainable.py",
                 "study/test_upgrade.py", "trainables/test_render.py",
                 "trainables/test_validation.py", "study/test_evaluate.py",
                 "analysis/test_report.py", "test_import_direction.py",
                 "study/test_bad_input.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files of LONGEST_FIRST first, in that order; every other file after them, in the
    order collected (a stable sort: the same order in every worker, as xdist requires)."""
    tests = Path(__file__).parent
    missing = [name for name in LONGEST_FIRST if not (tests / name).is_file()]
    if missing:  # a renamed file would silently lose its place
        raise pytest.UsageError(f"tests/conftest.py: LONGEST_FIRST names no file {missing}")
    rank = {tests / name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path, len(rank)))


@pytest.fixture(scope="session", autouse=True)
def share_of_the_cores():
    """Under pytest-xdist (`make test`) the workers share the machine's cores: each worker's
    torch, and the commands it starts (through OMP_NUM_THREADS), get their share. OpenMP
    threads that spin for a core another worker holds slow both several-fold: the GPU
    check's dry run took 147 s beside another worker instead of 28 s alone."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers == 1:
        yield
        return
    import torch

    share = max(1, (os.cpu_count() or 1) // workers)
    threads = torch.get_num_threads()
    torch.set_num_threads(share)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", str(share))
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def dsprites_path() -> Path:
    """The default generated file (`make run` and the tests share it; rendered if missing)."""
    from trainables import data

    path = data.default_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    # parallel test workers (pytest-xdist) on a fresh machine: one renders, the others wait
    with open(path.with_name(f".{path.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            from trainables import render

            render.write_hdf5(path)
    return path


@pytest.fixture(scope="session")
def dsprites(dsprites_path):
    """The generated set in memory (packed bits), loaded and validated once per session."""
    from trainables import data

    return data.load(dsprites_path)


@pytest.fixture
def own_cache(tmp_path, dsprites_path) -> Path:
    """A user cache folder of its own, `<tmp>/cache` (for XDG_CACHE_HOME; the data files under
    its `wae-study/`), sharing the generated file's validated bits: loading it from there
    takes no 8-second re-read."""
    from trainables import data

    data.load(dsprites_path)  # keeps the bits, if this machine had not
    folder = tmp_path / "cache" / "wae-study"
    folder.mkdir(parents=True)
    (folder / "packed").symlink_to(data.packed_cache(dsprites_path)[0].parent)
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def random_packed():
    """A dataset-sized array of random packed bits, read-only as it arrives from Ray's object
    store: for tests where the image content does not matter."""
    import numpy as np

    rows, row_bytes = 737_280, 512  # the generator's raw 64-bit words: `integers` is 2x slower
    words = np.random.default_rng(0).bit_generator.random_raw(rows * row_bytes // 8)
    array = words.view(np.uint8).reshape(rows, row_bytes)
    array.flags.writeable = False
    return array


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models on a shared 2-core machine: a second OpenMP thread only adds waiting."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
