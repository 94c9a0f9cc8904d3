"""Experiments on object storage (`s3://bucket/prefix`, and the other file systems pyarrow
resolves: `gs://`, `abfs://`, `hdfs://` ...).

Ray Tune writes a remote experiment's trial folders and checkpoints straight to the bucket.
Every other part of the project reads and writes local folders, so each remote experiment
has a local mirror (`Remote.mirror`): `pull` downloads the bucket's files into it (without
checkpoints, or with each trial's newest one for the figures and `evaluate`), `push` uploads
what the driver or a command wrote there (study.toml, provenance.json, optuna.db, report/,
extra_metrics.json). The mirror also holds the lock: one run or resume per experiment per
machine. S3 endpoints other than AWS (MinIO, Ceph, ...) come from `AWS_ENDPOINT_URL`;
credentials from the standard AWS variables or files.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from study.errors import BadInput
from trainables import experiment

CONNECT_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 60.0  # a read or write that stalls this long fails (and is retried)
REPORT_DIR = "report"


def check_writable(folder: Path, what: str = "storage",
                   fix: str = "choose another --storage") -> None:
    """BadInput unless `folder` is writable or can be created (its nearest existing parent
    is writable); creates nothing."""
    probe = folder
    while not probe.exists():
        probe = probe.parent
    try:
        tempfile.TemporaryFile(dir=probe).close()
    except OSError:
        raise BadInput(f"{what} {folder} is not writable (checked {probe}); {fix}") from None


def is_uri(text: str) -> bool:
    """A storage URI (`scheme://...`); `file://` counts as a local folder."""
    return "://" in text and not text.startswith("file://")


def mirror_root() -> Path:
    """Where the local mirrors live: `$WAE_STUDY_MIRROR`, else the user cache folder."""
    if os.environ.get("WAE_STUDY_MIRROR"):
        return Path(os.environ["WAE_STUDY_MIRROR"]).expanduser().resolve()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "wae-study" / "remote"


@dataclass(frozen=True)
class Remote:
    """A folder on object storage: its URI, its pyarrow file system and the path on it."""

    uri: str  # scheme://bucket/prefix, no trailing slash
    filesystem: Any  # pyarrow.fs.FileSystem
    path: str  # bucket/prefix as the file system names it

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    @property
    def parent_path(self) -> str:
        return posixpath.dirname(self.path)

    @property
    def mirror(self) -> Path:
        """The local working copy: <mirror root>/<scheme>/<the URI's path>."""
        scheme, rest = self.uri.split("://", 1)
        return mirror_root().joinpath(scheme, *rest.split("/"))

    def child(self, name: str) -> Remote:
        return Remote(f"{self.uri}/{name}", self.filesystem, f"{self.path}/{name}")

    def exists(self, relative: str = "") -> bool:
        from pyarrow.fs import FileType

        path = posixpath.join(self.path, relative) if relative else self.path
        return self.filesystem.get_file_info(path).type != FileType.NotFound

    def pull(self, checkpoints: bool = False) -> None:
        """Download the experiment's files into the mirror: everything but the checkpoints
        (with `checkpoints`, each trial's newest one, once) and report/. While a run or resume
        on this machine holds the mirror's lock, its top-level files (optuna.db,
        provenance.json: newer there than in the bucket) are left alone."""
        from pyarrow.fs import FileSelector, FileType

        skip_top = experiment.lock_held(self.mirror) if self.mirror.is_dir() else False
        files = [info for info in self.filesystem.get_file_info(
            FileSelector(self.path, recursive=True, allow_not_found=True))
            if info.type == FileType.File]
        folders: dict[str, set[str]] = {}  # trial folder -> its checkpoint folders
        for info in files:
            parts = posixpath.relpath(info.path, self.path).split("/")
            if len(parts) > 2 and parts[1].startswith(experiment.CHECKPOINT_PREFIX):
                folders.setdefault(parts[0], set()).add(posixpath.join(self.path, *parts[:2]))
        newest = {trial: posixpath.basename(experiment.newest_first(self.filesystem,
                                                                    sorted(found))[0])
                  for trial, found in folders.items()}  # trial folder -> its newest checkpoint
        for info in files:
            relative = posixpath.relpath(info.path, self.path)
            parts = relative.split("/")
            if parts[0] == REPORT_DIR or (len(parts) == 1 and skip_top):
                continue
            local = self.mirror.joinpath(*parts)
            if len(parts) > 2 and parts[1].startswith(experiment.CHECKPOINT_PREFIX):
                if not checkpoints or parts[1] != newest[parts[0]] or (
                        local.is_file() and local.stat().st_size == info.size):
                    continue  # not wanted, or already here (checkpoints never change)
            self._download(info.path, local)
        if checkpoints:
            for trial, keep in newest.items():  # older ones pulled before: pruned since
                for old in experiment.checkpoint_dirs(self.mirror / trial):
                    if old.name != keep:
                        shutil.rmtree(old, ignore_errors=True)

    def _download(self, path: str, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        with experiment.replacing(local) as tmp, self.filesystem.open_input_stream(path) as src, \
                open(tmp, "wb") as out:
            while chunk := src.read(1 << 22):
                out.write(chunk)

    def push(self, *relative: str) -> None:
        """Upload these files or folders of the mirror (those that exist) to the same places
        in the bucket; a folder replaces the bucket's (no stale files from an older one)."""
        from pyarrow.fs import LocalFileSystem, copy_files

        for item in relative:
            local = self.mirror / item
            if not local.exists():
                continue  # e.g. no optuna.db: not an adaptive study
            target = posixpath.join(self.path, item)
            if local.is_dir():
                self.filesystem.delete_dir_contents(target, missing_dir_ok=True)
            copy_files(str(local), target, source_filesystem=LocalFileSystem(),
                       destination_filesystem=self.filesystem)


def open_remote(uri: str) -> Remote:
    """The Remote of a URI, checked within seconds: the scheme has a file system, the
    endpoint answers, the credentials work and the bucket exists; else BadInput."""
    from pyarrow.fs import FileType

    uri = uri.rstrip("/")
    scheme, _, rest = uri.partition("://")
    parts = [p for p in rest.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise BadInput(f"{uri}: expected {scheme}://BUCKET[/PREFIX...] without '.' or '..'")
    uri = f"{scheme}://{'/'.join(parts)}"
    fs, path = _filesystem(uri, retries=1)
    bucket = path[: len(path) - len(path.lstrip("/"))] + path.lstrip("/").split("/", 1)[0]
    try:
        found = fs.get_file_info(bucket).type
    except OSError as err:
        raise BadInput(_unreachable(uri, err)) from None
    if found == FileType.NotFound:
        raise BadInput(f"{uri}: the bucket {scheme}://{parts[0]} does not exist; create it "
                       "(e.g. `aws s3 mb`) or fix the URI")
    return Remote(uri, _filesystem(uri, retries=3)[0], path)


def _filesystem(uri: str, retries: int) -> tuple[Any, str]:
    """pyarrow's file system for the URI and the path on it; S3 with short timeouts and the
    endpoint of `AWS_ENDPOINT_URL` (MinIO, Ceph, ...) when set."""
    import pyarrow
    from pyarrow import fs as pafs

    scheme, _, path = uri.partition("://")
    if scheme == "s3":
        options: dict[str, Any] = {}
        endpoint = os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            parsed = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
            options.update(endpoint_override=parsed.netloc, scheme=parsed.scheme)
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if region:
            options["region"] = region
        return pafs.S3FileSystem(
            connect_timeout=CONNECT_TIMEOUT_S, request_timeout=REQUEST_TIMEOUT_S,
            retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=retries),
            **options), path
    try:
        return pafs.FileSystem.from_uri(uri)
    except (pyarrow.ArrowInvalid, pyarrow.ArrowNotImplementedError, OSError, ValueError) as err:
        raise BadInput(f"{uri}: no file system handles it ({err}); use a folder or an "
                       "s3://, gs://, abfs:// or hdfs:// URI") from None


def _unreachable(uri: str, err: OSError) -> str:
    """The one-line reason (the network, the region, or the credentials) and the fix."""
    text = str(err).replace("\n", " ")[:200]
    if "NETWORK_CONNECTION" in text or "curlCode" in text:
        endpoint = os.environ.get("AWS_ENDPOINT_URL", "its default endpoint")
        return (f"{uri}: cannot reach the storage at {endpoint} ({text}); check the network "
                "and AWS_ENDPOINT_URL")
    if "HTTP status 301" in text or "PermanentRedirect" in text:
        return (f"{uri}: the bucket is in another region ({text}); set AWS_DEFAULT_REGION to "
                "the bucket's region")
    fix = ("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) to credentials "
           "for the bucket" if uri.startswith("s3://") else
           "check the file system's credentials")
    return f"{uri}: access denied ({text}); {fix}"


def open_experiment(text: str, checkpoints: bool = False) -> tuple[Path, Remote | None]:
    """An experiment argument: a local folder as is; a URI checked and pulled into its mirror
    (`checkpoints`: with each trial's newest one), whose path is returned with it."""
    if not is_uri(text):
        return Path(text.removeprefix("file://")).expanduser().resolve(), None
    remote = open_remote(text)
    if not remote.exists(experiment.STUDY_FILE):
        raise BadInput(f"{remote.uri} is not a wae-study experiment (no study.toml); pass the "
                       "URI `wae-study run` printed")
    remote.pull(checkpoints)
    return remote.mirror, remote
