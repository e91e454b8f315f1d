"""Where recordings are stored: a local folder, or an S3-compatible bucket (S3, MinIO).

A sink stores a file as it is recorded, chunk by chunk (``put``; a chunk can be written
again, in any order: what a back-fill does), gives a chunk back (``get``, to back-fill the
other sink), and at the end turns what it holds into one complete file (``finish``, fed
by a ``source`` that reads chunks from whichever copy has them). Every method blocks: the
dual writer (:mod:`recorder.dual`) calls them in worker threads.

- :class:`LocalSink`: each chunk written at its offset into ``<root>/<path>`` and synced
  (fdatasync) before it counts as stored, so a crash loses nothing a sink reported.
- :class:`S3Sink`: each chunk an object ``<prefix><path>.parts/<index>`` (with its SHA-256
  in the metadata) as the lesson goes, so a crash loses at most the chunk in flight; at the
  end one object ``<prefix><path>`` (a multipart upload for 5 MiB and more), checked, and
  the parts deleted.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .chunks import Chunk

#: S3's smallest multipart part (but the last)
S3_MIN_PART = 5 * 1024 * 1024


class SinkError(Exception):
    """A sink could not store or return data."""


class Sink:
    kind = ""

    def __init__(self, name: str) -> None:
        self.name = name

    def location(self, path: str) -> str:
        raise NotImplementedError

    def put(self, path: str, chunk: Chunk, data: bytes) -> None:
        raise NotImplementedError

    def get(self, path: str, chunk: Chunk) -> bytes:
        raise NotImplementedError

    def finish(self, path: str, chunks: list[Chunk], source: Callable[[Chunk], bytes]
               ) -> None:
        raise NotImplementedError

    def digest(self, path: str) -> tuple[int, str]:
        """(size, SHA-256) of the complete file."""
        raise NotImplementedError

    @contextmanager
    def local_copy(self, path: str) -> Iterator[Path]:
        """A path on this machine to open the complete file from (PyAV)."""
        raise NotImplementedError
        yield Path()  # pragma: no cover

    def free_bytes(self) -> int | None:
        """Free space where the sink writes (None: not a local disk)."""
        return None

    def close(self) -> None:
        """Release what the sink holds open."""


def _hashed(read: Callable[[int], bytes]) -> tuple[int, str]:
    """(size, SHA-256) of a stream read to its end in 1 MiB blocks."""
    h = hashlib.sha256()
    size = 0
    while block := read(1 << 20):
        h.update(block)
        size += len(block)
    return size, h.hexdigest()


def _checked(chunk: Chunk, data: bytes) -> bytes:
    if len(data) != chunk.length or hashlib.sha256(data).hexdigest() != chunk.sha256:
        raise SinkError(f"chunk {chunk.index} does not match its checksum")
    return data


class LocalSink(Sink):
    kind = "local"

    def __init__(self, name: str, root: str | Path) -> None:
        super().__init__(name)
        self.root = Path(root)
        self._fds: dict[str, int] = {}

    def location(self, path: str) -> str:
        return str(self.root / path)

    def _fd(self, path: str) -> int:
        fd = self._fds.get(path)
        if fd is None:
            target = self.root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = self._fds[path] = os.open(target, os.O_WRONLY | os.O_CREAT, 0o644)
        return fd

    def put(self, path: str, chunk: Chunk, data: bytes) -> None:
        try:
            fd = self._fd(path)
            view = memoryview(data)
            done = 0
            while done < len(data):
                done += os.pwrite(fd, view[done:], chunk.offset + done)
            os.fdatasync(fd)
        except OSError as exc:
            raise SinkError(f"{self.location(path)}: {exc.strerror or exc}") from exc

    def get(self, path: str, chunk: Chunk) -> bytes:
        try:
            with open(self.root / path, "rb") as fh:
                fh.seek(chunk.offset)
                return _checked(chunk, fh.read(chunk.length))
        except OSError as exc:
            raise SinkError(f"{self.location(path)}: {exc.strerror or exc}") from exc

    def finish(self, path: str, chunks: list[Chunk], source: Callable[[Chunk], bytes]
               ) -> None:
        # every chunk was put (the dual writer's back-fill saw to it): cut anything past
        # the end a failed write may have left, and close
        size = chunks[-1].offset + chunks[-1].length if chunks else 0
        try:
            fd = self._fd(path)
            os.ftruncate(fd, size)
            os.fsync(fd)
        except OSError as exc:
            raise SinkError(f"{self.location(path)}: {exc.strerror or exc}") from exc
        finally:
            self._close(path)

    def _close(self, path: str) -> None:
        fd = self._fds.pop(path, None)
        if fd is not None:
            os.close(fd)

    def digest(self, path: str) -> tuple[int, str]:
        try:
            with open(self.root / path, "rb") as fh:
                return _hashed(fh.read)
        except OSError as exc:
            raise SinkError(f"{self.location(path)}: {exc.strerror or exc}") from exc

    @contextmanager
    def local_copy(self, path: str) -> Iterator[Path]:
        yield self.root / path

    def free_bytes(self) -> int | None:
        try:
            return shutil.disk_usage(self.root if self.root.exists() else self.root.parent
                                     ).free
        except OSError:
            return 0

    def close(self) -> None:
        for path in list(self._fds):
            self._close(path)


class S3Sink(Sink):
    kind = "s3"

    def __init__(self, name: str, *, bucket: str, prefix: str = "",
                 endpoint_url: str | None = None, region: str = "us-east-1",
                 access_key: str | None = None, secret_key: str | None = None,
                 timeout_s: float = 3.0, client: Any = None) -> None:
        super().__init__(name)
        self.bucket = bucket
        self.prefix = prefix
        if client is None:
            import boto3
            from botocore.config import Config

            # no retries of its own: the dual writer retries, and must hear of a failure
            # within seconds to raise the alarm
            client = boto3.client(
                "s3", endpoint_url=endpoint_url, region_name=region,
                aws_access_key_id=access_key, aws_secret_access_key=secret_key,
                config=Config(connect_timeout=timeout_s, read_timeout=timeout_s,
                              retries={"max_attempts": 1, "mode": "standard"}))
        self.client = client

    def _key(self, path: str) -> str:
        return self.prefix + path

    def _part_key(self, path: str, index: int) -> str:
        return f"{self.prefix}{path}.parts/{index:08d}"

    def location(self, path: str) -> str:
        return f"s3://{self.bucket}/{self._key(path)}"

    def _call(self, what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return fn(Bucket=self.bucket, **kwargs)
        except Exception as exc:  # botocore's errors: connection, timeout, 4xx/5xx
            raise SinkError(f"{self.location(kwargs.get('Key', ''))}: {what}: {exc}") from exc

    def put(self, path: str, chunk: Chunk, data: bytes) -> None:
        self._call("put", self.client.put_object, Key=self._part_key(path, chunk.index),
                   Body=data, Metadata={"sha256": chunk.sha256, "offset": str(chunk.offset)})

    def get(self, path: str, chunk: Chunk) -> bytes:
        body = self._call("get", self.client.get_object,
                          Key=self._part_key(path, chunk.index))["Body"]
        try:
            return _checked(chunk, body.read())
        except SinkError:
            raise
        except Exception as exc:
            raise SinkError(f"{self.location(path)}: get: {exc}") from exc

    def finish(self, path: str, chunks: list[Chunk], source: Callable[[Chunk], bytes]
               ) -> None:
        key = self._key(path)
        total = sum(c.length for c in chunks)
        if total < S3_MIN_PART:
            data = b"".join(_checked(c, source(c)) for c in chunks)
            self._call("put", self.client.put_object, Key=key, Body=data)
        else:
            upload = self._call("create upload", self.client.create_multipart_upload,
                                Key=key)["UploadId"]
            try:
                parts: list[dict[str, Any]] = []
                buf: list[bytes] = []
                size = 0
                for i, c in enumerate(chunks):
                    buf.append(_checked(c, source(c)))
                    size += c.length
                    if size >= S3_MIN_PART or i == len(chunks) - 1:
                        n = len(parts) + 1
                        etag = self._call("upload part", self.client.upload_part, Key=key,
                                          UploadId=upload, PartNumber=n,
                                          Body=b"".join(buf))["ETag"]
                        parts.append({"PartNumber": n, "ETag": etag})
                        buf, size = [], 0
                self._call("complete upload", self.client.complete_multipart_upload,
                           Key=key, UploadId=upload, MultipartUpload={"Parts": parts})
            except SinkError:
                try:
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=key,
                                                       UploadId=upload)
                except Exception:
                    pass  # the bucket's lifecycle rule cleans up what is left
                raise
        for c in chunks:
            self._call("delete part", self.client.delete_object,
                       Key=self._part_key(path, c.index))

    def digest(self, path: str) -> tuple[int, str]:
        body = self._call("get", self.client.get_object, Key=self._key(path))["Body"]
        try:
            return _hashed(body.read)
        except Exception as exc:
            raise SinkError(f"{self.location(path)}: read: {exc}") from exc

    @contextmanager
    def local_copy(self, path: str) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="sfu-verify-") as tmp:
            target = Path(tmp) / Path(path).name
            body = self._call("get", self.client.get_object, Key=self._key(path))["Body"]
            try:
                with open(target, "wb") as fh:
                    while block := body.read(1 << 20):
                        fh.write(block)
            except Exception as exc:
                raise SinkError(f"{self.location(path)}: read: {exc}") from exc
            yield target
