"""`study.storage` without a server: the mirror's path, what `pull` copies down and what `push`
copies up, on a local folder standing in for the bucket (pyarrow's LocalFileSystem)."""

from __future__ import annotations

import pytest
from pyarrow.fs import LocalFileSystem

from study.errors import BadInput
from study.storage import Remote, is_uri, open_remote
from trainables import experiment


@pytest.fixture
def remote(tmp_path, monkeypatch):
    """A 'bucket' folder holding an experiment with two trials, and its mirror."""
    monkeypatch.setenv("WAE_STUDY_MIRROR", str(tmp_path / "mirror"))
    bucket = tmp_path / "bucket" / "pre" / "e"
    files = {"study.toml": "[study]\n", "optuna.db": "db", "report/index.html": "old",
             "t1/result.json": "{}\n", "t1/checkpoint_000001/pack.pt": "1",
             "t1/checkpoint_000002/pack.pt": "22", "t2/result.json": "{}\n",
             "t2/checkpoint_000000/pack.pt": "0"}
    for name, text in files.items():
        (bucket / name).parent.mkdir(parents=True, exist_ok=True)
        (bucket / name).write_text(text)
    return Remote("s3://bucket/pre/e", LocalFileSystem(), str(bucket))


def mirrored(remote: Remote) -> set[str]:
    return {str(p.relative_to(remote.mirror)) for p in remote.mirror.rglob("*") if p.is_file()}


def test_uris_and_the_mirror_path(tmp_path, monkeypatch):
    assert is_uri("s3://b/p") and is_uri("gs://b") and not is_uri("file:///x")
    assert not is_uri("experiments/x")
    monkeypatch.setenv("WAE_STUDY_MIRROR", str(tmp_path))
    assert Remote("s3://b/p/n", LocalFileSystem(), "b/p/n").mirror == tmp_path / "s3/b/p/n"
    with pytest.raises(BadInput, match="without '.' or '..'"):
        open_remote("s3://b/../etc")


def test_pull_without_and_with_the_newest_checkpoints(remote):
    remote.pull()
    assert mirrored(remote) == {"study.toml", "optuna.db", "t1/result.json", "t2/result.json"}
    stale = remote.mirror / "t1" / "checkpoint_000000"  # pulled once, pruned in the bucket since
    stale.mkdir()
    remote.pull(checkpoints=True)
    assert mirrored(remote) == {"study.toml", "optuna.db", "t1/result.json", "t2/result.json",
                                "t1/checkpoint_000002/pack.pt", "t2/checkpoint_000000/pack.pt"}
    assert not stale.exists()


def test_a_running_driver_keeps_its_top_level_files(remote):
    remote.mirror.mkdir(parents=True)
    (remote.mirror / "optuna.db").write_text("newer")
    with experiment.locked(remote.mirror):
        remote.pull()
    assert (remote.mirror / "optuna.db").read_text() == "newer"
    assert (remote.mirror / "t1" / "result.json").is_file()


def test_push_replaces_a_folder_and_skips_what_is_missing(remote, tmp_path):
    (remote.mirror / "report").mkdir(parents=True)
    (remote.mirror / "report" / "results.csv").write_text("new")
    (remote.mirror / "provenance.json").write_text("[]")
    remote.push("provenance.json", "report", "no-such-file")
    bucket = tmp_path / "bucket" / "pre" / "e"
    assert [p.name for p in (bucket / "report").iterdir()] == ["results.csv"]
    assert (bucket / "provenance.json").read_text() == "[]"
