"""One storage layer for local paths, NFS mounts, hdfs://, webhdfs:// and s3://.

Every other module reads and writes through these functions, so a path in a
config may point anywhere the user's data lives. Credentials come only from
the environment and are scrubbed from anything we print or write (see
``redact``).
"""
from __future__ import annotations

import contextlib
import fnmatch
import os
import re
import uuid
from pathlib import Path
from typing import IO, Any, Iterator
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from dltune.errors import UserError, first_line


class StorageError(UserError):
    """A path that cannot be reached or a filesystem whose client is missing."""


# Environment variables whose values are secrets, plus name patterns for any others.
SECRET_ENV_VARS = (
    "HADOOP_USER_PASSWORD",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "RAY_AUTH_TOKEN",
)
_SECRET_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN|CREDENTIAL|API_KEY)", re.IGNORECASE)
_URI_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]+):(?P<pw>[^@/\s]+)@")
REDACTED = "***"


def scheme_of(path: str) -> str:
    """'' for local paths (including file://), else the URI scheme in lower case."""
    if "://" not in path:
        return ""
    scheme = path.split("://", 1)[0].lower()
    return "" if scheme == "file" else scheme


def is_remote(path: str) -> bool:
    return scheme_of(path) != ""


def _local_path(path: str) -> str:
    if path.startswith("file://"):
        path = path[len("file://"):]
    return os.path.abspath(os.path.expanduser(path))


def _s3_filesystem() -> pafs.FileSystem:
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    kwargs: dict[str, Any] = {}
    if endpoint:
        parts = urlsplit(endpoint)
        kwargs["endpoint_override"] = parts.netloc or parts.path
        kwargs["scheme"] = parts.scheme or "https"
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        kwargs["region"] = region
    # Keys and session token are read by Arrow from the standard AWS variables.
    return pafs.S3FileSystem(**kwargs)


def _hdfs_filesystem(netloc: str) -> pafs.FileSystem:
    host, _, port = netloc.rpartition(":") if ":" in netloc else (netloc, "", "")
    try:
        return pafs.HadoopFileSystem(
            host=host or "default",
            port=int(port) if port else 0,  # 0: the port from core-site.xml, as HA name services need
            user=os.environ.get("HADOOP_USER_NAME"),
            kerb_ticket=os.environ.get("KRB5CCNAME"),
        )
    except (OSError, RuntimeError) as exc:  # libhdfs / JVM not found or namenode unreachable
        raise StorageError(
            f"cannot open hdfs://{netloc}: {first_line(str(exc))}. The native HDFS client needs a "
            "Hadoop install (HADOOP_HOME, JAVA_HOME, CLASSPATH=$(hadoop classpath --glob), "
            "ARROW_LIBHDFS_DIR); without one, use webhdfs://host:port/path (needs 'requests')"
        ) from exc


def _webhdfs_filesystem(netloc: str, uri_user: str | None) -> pafs.FileSystem:
    try:
        from fsspec.implementations.webhdfs import WebHDFS
    except ImportError as exc:
        raise StorageError("webhdfs:// paths need fsspec and requests: pip install fsspec requests") from exc
    host, _, port = netloc.rpartition(":") if ":" in netloc else (netloc, "", "")
    user = uri_user or os.environ.get("HADOOP_USER_NAME")
    password = os.environ.get("HADOOP_USER_PASSWORD")
    if password and not user:
        raise StorageError("HADOOP_USER_PASSWORD is set but no user: set HADOOP_USER_NAME (or webhdfs://USER@host/...)")
    fs = WebHDFS(
        host=host or netloc,
        port=int(port) if port else 9870,
        user=user,
        password=password,
        kerberos=bool(os.environ.get("KRB5CCNAME")),
        use_https=os.environ.get("DLTUNE_WEBHDFS_HTTPS", "") == "1",
    )
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs))


def filesystem(path: str) -> tuple[pafs.FileSystem, str]:
    """The Arrow filesystem for ``path`` and the path inside it."""
    scheme = scheme_of(path)
    if scheme == "":
        return pafs.LocalFileSystem(), _local_path(path)
    parts = urlsplit(path)
    netloc = parts.netloc.rsplit("@", 1)[-1]  # never pass inline credentials on
    if scheme == "s3":
        return _s3_filesystem(), f"{netloc}{parts.path}".rstrip("/")
    if scheme in ("hdfs", "viewfs"):
        return _hdfs_filesystem(netloc), parts.path or "/"
    if scheme == "webhdfs":
        return _webhdfs_filesystem(netloc, parts.username), parts.path or "/"
    raise StorageError(f"unsupported storage scheme '{scheme}://' in {redact(path)}; use a local path, hdfs://, webhdfs:// or s3://")


def join(base: str, *parts: str) -> str:
    if is_remote(base):
        return "/".join([base.rstrip("/"), *[p.strip("/") for p in parts]])
    return os.path.join(_local_path(base), *parts)


def _info(path: str) -> pafs.FileInfo:
    fs, inner = filesystem(path)
    try:
        return fs.get_file_info(inner)
    except OSError as exc:
        raise StorageError(f"cannot reach {redact(path)}: {first_line(str(exc))}") from exc


def exists(path: str) -> bool:
    return _info(path).type != pafs.FileType.NotFound


def exists_on(fs: pafs.FileSystem, path: str) -> bool:
    """Whether ``path``, a path inside ``fs`` (as a Ray checkpoint names one), is there."""
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def isdir(path: str) -> bool:
    return _info(path).type == pafs.FileType.Directory


def makedirs(path: str) -> None:
    fs, inner = filesystem(path)
    fs.create_dir(inner, recursive=True)


def _rebuild(original: str, inner_path: str) -> str:
    """Turn a path inside a filesystem back into a URI of the same kind as ``original``."""
    scheme = scheme_of(original)
    if scheme == "":
        return inner_path
    if scheme == "s3":
        return f"s3://{inner_path}"
    netloc = urlsplit(original).netloc.rsplit("@", 1)[-1]
    return f"{scheme}://{netloc}{inner_path}"


def list_files(path: str, suffixes: tuple[str, ...] = ()) -> list[str]:
    """Files named by ``path``: a file, every file under a directory, or a glob.

    Hidden files and Spark/Hadoop markers (``_SUCCESS``, ``.crc``) are skipped.
    The result is sorted so every process sees the same order.
    """
    has_glob = any(ch in path for ch in "*?[")
    if has_glob:
        base = path
        while any(ch in base for ch in "*?["):
            base = base.rsplit("/", 1)[0]
        candidates = _walk(base) if exists(base) else []
        files = [f for f in candidates if fnmatch.fnmatch(f, _normalise_pattern(path))]
    else:
        info = _info(path)
        if info.type == pafs.FileType.NotFound:
            raise StorageError(f"no such file or directory: {redact(path)}")
        files = _walk(path) if info.type == pafs.FileType.Directory else [_rebuild(path, info.path)]
    files = [f for f in files if not _is_marker(f)]
    if suffixes:
        files = [f for f in files if f.lower().endswith(suffixes)]
    return sorted(files)


def list_names(path: str) -> list[str]:
    """The names of what a directory holds (files and directories, not what is under them)."""
    fs, inner = filesystem(path)
    return [info.base_name for info in fs.get_file_info(pafs.FileSelector(inner))]


def _normalise_pattern(path: str) -> str:
    return _local_path(path) if not is_remote(path) else path


def _is_marker(path: str) -> bool:
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return name.startswith((".", "_")) or name.endswith(".crc")


def _walk(path: str) -> list[str]:
    fs, inner = filesystem(path)
    selector = pafs.FileSelector(inner, recursive=True)
    infos = fs.get_file_info(selector)
    return [_rebuild(path, i.path) for i in infos if i.type == pafs.FileType.File]


@contextlib.contextmanager
def open_read(path: str) -> Iterator[IO[bytes]]:
    fs, inner = filesystem(path)
    try:
        stream = fs.open_input_file(inner)
    except FileNotFoundError as exc:
        raise StorageError(f"no such file: {redact(path)}") from exc
    except OSError as exc:
        raise StorageError(f"cannot read {redact(path)}: {first_line(str(exc))}") from exc
    with stream:
        yield stream


def read_bytes(path: str) -> bytes:
    with open_read(path) as f:
        return f.read()


def read_text(path: str) -> str:
    return read_bytes(path).decode("utf-8")


def write_bytes(path: str, data: bytes) -> None:
    """Write atomically: a reader sees the old file or the whole new one, never a part.

    Locally the data goes to a temp name in the same directory and is renamed.
    On object stores an upload only becomes visible when complete; HDFS gets a
    temp name and a move.
    """
    fs, inner = filesystem(path)
    parent = inner.rsplit("/", 1)[0] if "/" in inner else ""
    if parent:
        fs.create_dir(parent, recursive=True)
    if scheme_of(path) == "s3":
        with fs.open_output_stream(inner) as out:
            out.write(data)
        return
    tmp = f"{inner}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with fs.open_output_stream(tmp) as out:
            out.write(data)
        if scheme_of(path) == "":
            os.replace(tmp, inner)
        else:
            fs.move(tmp, inner)
    finally:
        with contextlib.suppress(OSError):
            if fs.get_file_info(tmp).type != pafs.FileType.NotFound:
                fs.delete_file(tmp)


def write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def delete(path: str) -> None:
    fs, inner = filesystem(path)
    info = fs.get_file_info(inner)
    if info.type == pafs.FileType.Directory:
        fs.delete_dir(inner)
    elif info.type == pafs.FileType.File:
        fs.delete_file(inner)


def local_files(local_dir: str) -> list[tuple[str, str]]:
    """(name relative to ``local_dir`` with "/" separators, path) of every file under it."""
    found = []
    for root, _dirs, files in os.walk(local_dir):
        for name in sorted(files):
            path = os.path.join(root, name)
            found.append((os.path.relpath(path, local_dir).replace(os.sep, "/"), path))
    return found


def upload_dir(local_dir: str, remote_dir: str, skip_hidden: bool = False) -> None:
    """Copy every file under ``local_dir`` to ``remote_dir`` (same relative names);
    with ``skip_hidden``, not the dot files (writers' temp files)."""
    for rel, path in local_files(local_dir):
        if not (skip_hidden and os.path.basename(path).startswith(".")):
            write_bytes(join(remote_dir, rel), Path(path).read_bytes())


def download_dir(remote_dir: str, local_dir: str) -> None:
    """Copy every file under ``remote_dir`` into ``local_dir``."""
    prefix = remote_dir.rstrip("/") + "/"
    for path in list_files(remote_dir) if exists(remote_dir) else []:
        rel = path[len(prefix):] if path.startswith(prefix) else os.path.basename(path)
        dest = os.path.join(local_dir, rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        Path(dest).write_bytes(read_bytes(path))


# --- secrets -----------------------------------------------------------------

def secret_values() -> list[str]:
    """Values of secret environment variables currently set (longest first)."""
    values = {
        value
        for name, value in os.environ.items()
        if value and len(value) >= 4 and (name in SECRET_ENV_VARS or _SECRET_NAME.search(name))
    }
    return sorted(values, key=len, reverse=True)


def redact(value: Any) -> Any:
    """Return ``value`` with secrets replaced by '***' (strings, lists and dicts, recursively)."""
    if isinstance(value, str):
        text = _URI_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", value)
        for secret in secret_values():
            text = text.replace(secret, REDACTED)
        return text
    if isinstance(value, dict):
        return {k: (REDACTED if isinstance(k, str) and _SECRET_NAME.search(k) and v else redact(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v) for v in value)
    return value
