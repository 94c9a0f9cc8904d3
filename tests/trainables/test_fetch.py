"""`trainables.fetch` and `wae-study data fetch` against a server on loopback: a download
checked against its checksum, an interrupted transfer resumed with an HTTP Range request, a
corrupted or missing file refused, and the command verifying what it fetched."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from study.cli import main
from trainables import fetch

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class Server:
    """Serves `files` {path: bytes}; honours Range; `cut` {path: n} sends the first n bytes of
    a full-length response once, then drops the connection (an interrupted transfer)."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files, self.cut, self.ranges = files, {}, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                asked = self.headers.get("Range")
                server.ranges.append(asked)
                if asked:
                    start = int(asked.removeprefix("bytes=").split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                n = server.cut.pop(self.path, None)
                self.wfile.write(body[start:] if n is None else body[start:start + n])
                if n is not None:
                    self.close_connection = True

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server({"/file.bin": PAYLOAD})
    yield s
    s.close()


def source(server: Server, path: str = "/file.bin", data: bytes = PAYLOAD) -> fetch.Source:
    return fetch.Source(server.url + path, len(data), hashlib.sha256(data).hexdigest())


def test_a_download_is_checked_and_moved_into_place(server, tmp_path):
    out = fetch.fetch(source(server), tmp_path / "d.hdf5", progress=False)
    assert out.read_bytes() == PAYLOAD and not (tmp_path / "d.hdf5.part").exists()


def test_an_interrupted_transfer_resumes_from_where_it_stopped(server, tmp_path):
    server.cut["/file.bin"] = 300_000
    out = tmp_path / "d.hdf5"
    with pytest.raises(fetch.FetchError, match="run the same command again to resume"):
        fetch.fetch(source(server), out, progress=False)
    assert (tmp_path / "d.hdf5.part").stat().st_size == 300_000 and not out.exists()
    fetch.fetch(source(server), out, progress=False)
    assert server.ranges == [None, "bytes=300000-"]  # only the rest was asked for
    assert out.read_bytes() == PAYLOAD


def test_a_corrupted_file_is_refused_and_deleted(server, tmp_path):
    server.files["/file.bin"] = PAYLOAD[:-1] + b"x"
    with pytest.raises(fetch.FetchError, match="is not the expected one"):
        fetch.fetch(source(server), tmp_path / "d.hdf5", progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("url", "message"), [
    (lambda s: s.url + "/missing.bin", "HTTP 404"),
    (lambda s: "http://127.0.0.1:9/file.bin", "cannot reach"),  # nothing listens on port 9
])
def test_unreachable_or_missing_files_say_so(server, tmp_path, url, message):
    with pytest.raises(fetch.FetchError, match=message):
        fetch.fetch(fetch.Source(url(server), None, "0" * 64), tmp_path / "d.hdf5",
                    progress=False)


@pytest.mark.slow  # reads, serves and verifies the whole generated file
def test_data_fetch_verifies_the_file_and_refuses_a_wrong_one(dsprites_path, tmp_path,
                                                            monkeypatch, capsys):
    """The command end to end, serving the generated file (the official layout) as a mirror
    of the official one: with its checksum it is fetched and verified; with the official
    checksum it is refused with exit 2 and nothing is left behind."""
    body = Path(dsprites_path).read_bytes()
    mirror = Server({"/dsprites.hdf5": body})
    try:
        out = tmp_path / "official.hdf5"
        assert main(["data", "fetch", "--url", mirror.url + "/dsprites.hdf5",
                     "--out", str(out)]) == 2
        assert "is not the expected one" in capsys.readouterr().err
        assert list(tmp_path.iterdir()) == []
        monkeypatch.setitem(fetch.SOURCES, "dsprites", fetch.Source(
            fetch.OFFICIAL.url, len(body), hashlib.sha256(body).hexdigest()))
        monkeypatch.setenv(fetch.URL_ENV, mirror.url + "/dsprites.hdf5")
        assert main(["data", "fetch", "--out", str(out)]) == 0
        said = capsys.readouterr().out
        assert "fetched" in said and "ok:" in said and out.read_bytes() == body
    finally:
        mirror.close()


def test_data_official_names_the_fetched_file_or_how_to_get_it(tmp_path, monkeypatch):
    import argparse

    from study.cli import data_file

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(argparse.ArgumentTypeError, match="run `wae-study data fetch` first"):
        data_file("official")
    fetched = tmp_path / "wae-study" / fetch.FILE_NAME
    fetched.parent.mkdir()
    fetched.write_bytes(b"x")
    assert data_file("official") == fetched
    assert data_file("some/file.h5") == Path("some/file.h5")
