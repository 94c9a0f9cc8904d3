"""Downloading a dataset's published file: resumable, checked, moved into place atomically.

Each file is checked against a size and digest recorded by a source other than the server it
comes from (`Source.recorded_by`):
- dSprites: DeepMind's `dsprites_ndarray_co1sh3sc6or40x32y32_64x64.hdf5`, its size and SHA-256
  as TensorFlow Datasets records them for the same address (`tensorflow/datasets`,
  `tensorflow_datasets/datasets/dsprites/checksums.tsv`).
- shapes3d: DeepMind's `3dshapes.h5`, size and SHA-256 from a third-party record whose MD5 of
  the file agrees with disent's (`nmichlo/disent`, `099a2078...`).
- mpi3d_toy, _realistic, _real: the `.npz` files of rr-learning/disentanglement_dataset; only
  an MD5 of each is recorded elsewhere (disent's), no size: checked by MD5.
- smallnorb's six files and cars3d's archive, which are converted after their download: their
  records are in `trainables.converted`.
- scream_dsprites' painting, Munch's The Scream from Wikimedia Commons (the address
  disentanglement_lib downloads): nobody records its size or digest apart from its server,
  and Commons has replaced the file more than once, so it is checked as an image only
  (`trainables.image_files.read_painting`); its SHA-256 is printed and every study on it
  records it (provenance.json, the report's footer).
None of these was downloaded from here (no network): the tests serve files of the same
layout on loopback.

A transfer goes to `<file>.part`; a second call asks the server for the rest (HTTP Range) and
appends, or starts over when the server ignores ranges. Only a file of the expected size and
checksum replaces the target (`os.replace`); a mismatching one is deleted. Errors are
`FetchError`, one line naming the problem and the fix.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

URL_ENV = "WAE_STUDY_DSPRITES_URL"  # a mirror of the official file
CHUNK = 1 << 20


@dataclass(frozen=True)
class Source:
    url: str
    size: int | None  # bytes, None when unknown
    digest: str | None  # hex digest of the whole file, None when nobody else records one
    algorithm: str = "sha256"  # the hashlib name of `digest`: md5 where only that is recorded
    recorded_by: str = ""  # where size and digest come from: never the server itself


OFFICIAL = Source(
    url="https://github.com/deepmind/dsprites-dataset/blob/master/"
        "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.hdf5?raw=true",
    size=28_024_106,
    digest="729fa22e884c9c500e1f17415d580746b4c5894fbbb780a1319bbcfa39a745bb",
    recorded_by="TensorFlow Datasets",
)
FILE_NAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.hdf5"
_MPI3D = "https://storage.googleapis.com/disentanglement_dataset/Final_Dataset/mpi3d_{}.npz"
SOURCES: dict[str, Source] = {  # by the dataset whose file it is
    "dsprites": OFFICIAL,
    "shapes3d": Source(
        url="https://storage.googleapis.com/3d-shapes/3dshapes.h5", size=267_573_662,
        digest="0a0f6ed98baff276a50f3a081a7434d788da63cb135a98189b2a5b5769be1785",
        recorded_by="a third-party record (its MD5 agrees with disent's)"),
    **{f"mpi3d_{kind}": Source(url=_MPI3D.format(kind), size=None, digest=md5,
                               algorithm="md5", recorded_by="disent (nmichlo/disent)")
       for kind, md5 in (("toy", "55889cb7c7dfc655d6e0277beee88868"),
                         ("realistic", "59a6225b88b635365f70c91b3e52f70f"),
                         ("real", "0f33f609918fb5c97996692f91129802"))},
    "scream_dsprites": Source(
        url="https://upload.wikimedia.org/wikipedia/commons/f/f4/The_Scream.jpg", size=None,
        digest=None, recorded_by="nobody: checked as an image, its digest recorded per study"),
}


class FetchError(RuntimeError):
    """A download that could not finish; the message names the fix."""


def source_for(owner: str, url: str | None = None) -> Source:
    """The published file of dataset `owner` (a key of `SOURCES`), from `url` (a mirror serves
    the same bytes: the checksum stays), else for dSprites `$WAE_STUDY_DSPRITES_URL`, else its
    canonical address."""
    source = SOURCES[owner]
    mirror = url or (os.environ.get(URL_ENV) if owner == "dsprites" else None)
    return dataclasses.replace(source, url=mirror) if mirror else source


def fetch(source: Source, out: Path, progress: bool = True) -> Path:
    """Download `source` to `out` (resuming `<out>.part`), check it, move it into place."""
    part = out.with_name(out.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    if source.size is not None and have > source.size:
        part.unlink()
        have = 0
    if source.size is None or have < source.size:
        _download(source.url, part, have, progress)
    problem = mismatch(source, part)
    if problem:
        part.unlink()
        raise FetchError(f"{source.url}: {problem}; deleted it, try again or another mirror "
                         "(--url)")
    os.replace(part, out)
    return out


def mismatch(source: Source, path: Path) -> str | None:
    """How the file at `path` differs from `source`'s recorded size and digest, or None when it
    matches: a download is checked before it is moved into place, a kept one before reuse."""
    if source.digest is None:
        return None  # nothing to compare with: the caller checks the content
    got, digest = path.stat().st_size, _digest(path, source.algorithm)
    if digest == source.digest and (source.size is None or got == source.size):
        return None
    return (f"the downloaded file ({got:,} bytes, {source.algorithm} {digest[:12]}...) is not "
            f"the expected one ({_size(source.size)}, {source.algorithm} "
            f"{source.digest[:12]}...)")


def _download(url: str, part: Path, have: int, progress: bool) -> None:
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=30)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # nothing left to send: the part is complete
            return
        raise FetchError(f"{url}: HTTP {err.code} {err.reason}; check the address (--url or "
                         f"${URL_ENV})") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise FetchError(f"cannot reach {url} ({reason}); check the network or use a mirror "
                         f"(--url or ${URL_ENV})") from None
    with response:
        resumed = response.status == 206
        total = response.length + (have if resumed else 0) if response.length else None
        done = have if resumed else 0
        with open(part, "ab" if resumed else "wb") as sink:
            try:
                while chunk := response.read(CHUNK):
                    sink.write(chunk)
                    done += len(chunk)
                    if progress:
                        _bar(done, total)
            except (http.client.HTTPException, OSError):
                pass  # a dropped connection: the part so far is kept
    if total is not None and done < total:
        raise FetchError(f"{url}: the transfer stopped after {done:,} of {total:,} bytes; run "
                         "the same command again to resume it")
    if progress:
        print(file=sys.stderr)


def _bar(done: int, total: int | None) -> None:
    if total:
        filled = int(30 * done / total)
        text = f"\r[{'#' * filled}{'.' * (30 - filled)}] {done / 1e6:.1f} / {total / 1e6:.1f} MB"
    else:
        text = f"\r{done / 1e6:.1f} MB"
    print(text, end="", file=sys.stderr, flush=True)


def _digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _size(size: int | None) -> str:
    return f"{size:,} bytes" if size is not None else "size unknown"
