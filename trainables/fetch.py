"""Downloading the official dSprites file: resumable, checked, moved into place atomically.

The file is DeepMind's `dsprites_ndarray_co1sh3sc6or40x32y32_64x64.hdf5` from its canonical
repository. Its size and SHA-256 are those TensorFlow Datasets records for the same address
(`tensorflow/datasets`, `tensorflow_datasets/datasets/dsprites/checksums.tsv`), so a
download is checked against a source other than the server it came from.

A transfer goes to `<file>.part`; a second call asks the server for the rest (HTTP Range) and
appends, or starts over when the server ignores ranges. Only a file of the expected size and
checksum replaces the target (`os.replace`); a mismatching one is deleted. Errors are
`FetchError`, one line naming the problem and the fix.
"""

from __future__ import annotations

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
    sha256: str


OFFICIAL = Source(
    url="https://github.com/deepmind/dsprites-dataset/blob/master/"
        "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.hdf5?raw=true",
    size=28_024_106,
    sha256="729fa22e884c9c500e1f17415d580746b4c5894fbbb780a1319bbcfa39a745bb",
)
FILE_NAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.hdf5"


class FetchError(RuntimeError):
    """A download that could not finish; the message names the fix."""


def official_source(url: str | None = None) -> Source:
    """The official file, from `url`, else `$WAE_STUDY_DSPRITES_URL`, else its canonical
    address (a mirror serves the same bytes: the checksum stays)."""
    return Source(url or os.environ.get(URL_ENV) or OFFICIAL.url, OFFICIAL.size, OFFICIAL.sha256)


def fetch(source: Source, out: Path, progress: bool = True) -> Path:
    """Download `source` to `out` (resuming `<out>.part`), check it, move it into place."""
    part = out.with_name(out.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    if source.size is not None and have > source.size:
        part.unlink()
        have = 0
    if source.size is None or have < source.size:
        _download(source.url, part, have, progress)
    got, digest = part.stat().st_size, _sha256(part)
    if digest != source.sha256 or (source.size is not None and got != source.size):
        part.unlink()
        raise FetchError(f"{source.url}: the downloaded file ({got:,} bytes, sha256 "
                         f"{digest[:12]}...) is not the expected one ({_size(source.size)}, "
                         f"sha256 {source.sha256[:12]}...); deleted it, try again or another "
                         f"mirror (--url or ${URL_ENV})")
    os.replace(part, out)
    return out


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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _size(size: int | None) -> str:
    return f"{size:,} bytes" if size is not None else "size unknown"
