"""Where a tenant's jobs may read and write files: its data roots `<data_dir>/<tenant>/` (one under
each `--data-dir` of the server), and the object-store endpoints the server's config allows.

Every check resolves the path first (symlinks followed, `..` gone) and then asks whether it lies
inside one of the tenant's roots, so a link inside a root that points into another tenant's root
or elsewhere is refused like the path it points to. A path naming `..` is refused before any
resolving. A feature job's output must not exist: outputs never overwrite a file. The checks are
made again where the file is opened (`open_input`, `publish_output`): the file descriptor's own
path is checked after opening, so a link swapped in between the admission and the run is caught.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

TENANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEFAULT_S3_ENDPOINT = "aws"  # the allow-list's name for AWS's own S3 endpoint (no endpoint_override)


class DataPathError(ValueError):
    """A path or URI a job may not use; `status` is the HTTP status to answer (403 outside what
    the caller may reach, 409 an existing output, 422 malformed), the message names the field."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def tenant_roots(data_dirs: list[Path], tenant: str, field: str) -> list[Path]:
    """The tenant's data roots (resolved), one per data dir; DataPathError naming `field` when the
    server has none (`--data-dir` unset) or the tenant's name could step out of them."""
    if not data_dirs:
        raise DataPathError(422, f"{field}: this server has no --data-dir, so it reads and writes no file for a job; "
                                 "start it with --data-dir DIR and put the tenant's files under DIR/<tenant>/")
    if not TENANT_NAME.match(tenant or ""):
        raise DataPathError(422, f"tenant: {tenant!r} is not a tenant name (letters, digits, '.', '_', '-'; "
                                 "starting with a letter or digit)")
    return [(Path(d).resolve() / tenant) for d in data_dirs]


def _owner_tenant(resolved: Path, data_dirs: list[Path]) -> str | None:
    for d in data_dirs:
        root = Path(d).resolve()
        if resolved.is_relative_to(root) and resolved != root:
            return resolved.relative_to(root).parts[0]
    return None


def _inside(path: str, data_dirs: list[Path], tenant: str, field: str) -> tuple[Path, Path]:
    """(the resolved path, the tenant root holding it); DataPathError naming `field` otherwise."""
    roots = tenant_roots(data_dirs, tenant, field)
    if "://" in path:
        scheme, _, rest = path.partition("://")
        if scheme != "file":
            raise DataPathError(422, f"{field}: {path!r} is a {scheme}:// URI; feature jobs read and write files "
                                     f"under the tenant's data root ({roots[0]}/): copy the data there")
        path = rest
    given = Path(path)
    if not given.is_absolute():
        raise DataPathError(422, f"{field}: {path!r} is relative; give an absolute path under {roots[0]}/ "
                                 "(the SDK and CLI resolve relative paths for you)")
    if ".." in given.parts:
        raise DataPathError(422, f"{field}: {path!r} holds '..'; name the file by its path under {roots[0]}/")
    resolved = given.resolve(strict=False)
    for root in roots:
        if resolved.is_relative_to(root) and resolved != root:
            return resolved, root
    owner = _owner_tenant(resolved, data_dirs)
    if owner is not None and owner != tenant:
        raise DataPathError(403, f"{field}: {path} is in tenant {owner!r}'s data root and the job's tenant is "
                                 f"{tenant!r}: use a file under {roots[0]}/ (each tenant reads and writes only its own)")
    via = f" (it resolves to {resolved})" if str(resolved) != str(given) else ""
    raise DataPathError(403, f"{field}: {path}{via} is outside tenant {tenant!r}'s data root "
                             f"{', '.join(map(str, roots))}: move it under {roots[0]}/")


def feature_input(path: str, data_dirs: list[Path], tenant: str, field: str = "input") -> tuple[Path, Path]:
    """(resolved input file, its tenant root): an existing regular file the server can read inside
    the tenant's data root; DataPathError naming `field` and the fix otherwise."""
    resolved, root = _inside(path, data_dirs, tenant, field)
    if not resolved.is_file():
        raise DataPathError(422, f"{field}: {resolved} does not exist on the server (or is not a file)")
    if not os.access(resolved, os.R_OK):
        raise DataPathError(403, f"{field}: {resolved} is not readable by the server's user")
    return resolved, root


def feature_output(path: str, data_dirs: list[Path], tenant: str, field: str = "output") -> tuple[Path, Path]:
    """(resolved output file, its tenant root): a file that does not exist yet, in a directory the
    server can write inside the tenant's data root; DataPathError naming `field` and the fix
    otherwise (409 when the file exists: outputs never overwrite)."""
    given = Path(path.partition("://")[2] if path.startswith("file://") else path)
    if given.is_symlink():
        raise DataPathError(409, f"{field}: {path} exists (a symbolic link); name a new file: outputs never "
                                 "overwrite anything")
    resolved, root = _inside(path, data_dirs, tenant, field)
    if resolved.exists():
        raise DataPathError(409, f"{field}: {resolved} exists; name a new file (outputs never overwrite one)")
    if not resolved.parent.is_dir() or not os.access(resolved.parent, os.W_OK):
        raise DataPathError(422, f"{field}: {resolved.parent} does not exist or the server cannot write there; "
                                 f"create it under {root}/")
    return resolved, root


def _fd_path(fd: int) -> Path:
    return Path(os.readlink(f"/proc/self/fd/{fd}"))


def _check_fd(fd: int, root: Path, field: str) -> None:
    where = _fd_path(fd)
    if not where.is_relative_to(Path(root).resolve()):
        raise DataPathError(403, f"{field}: opened {where}, outside the data root {root} it was admitted in "
                                 "(a link was swapped in after submission); refused")


def open_input(path: str | Path, root: str | Path, field: str = "input"):
    """The input file opened for reading (a binary file object), after checking that what was
    opened lies inside `root` (DataPathError otherwise)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check_fd(fd, Path(root), field)
    except DataPathError:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def publish_output(path: str | Path, root: str | Path, write, field: str = "output") -> Path:
    """Write `path` by `write(binary file)` without ever replacing a file: the bytes go to a new
    hidden file beside it (created exclusively, links not followed), which is then hard-linked to
    `path` (refused by the OS if `path` exists) and removed. The directory is opened once and
    checked to lie inside `root`; both names are made relative to it. DataPathError (409) when the
    output exists by then."""
    target = Path(path)
    directory = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    partial = f".{target.name}.{os.getpid()}.partial"
    try:
        _check_fd(directory, Path(root), field)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640,
                     dir_fd=directory)
        try:
            with os.fdopen(fd, "wb") as out:
                write(out)
                out.flush()
                os.fsync(out.fileno())
            try:
                os.link(partial, target.name, src_dir_fd=directory, dst_dir_fd=directory, follow_symlinks=False)
            except FileExistsError:
                raise DataPathError(409, f"{field}: {target} exists (written since the job was submitted); it is "
                                         "left as it is: outputs never overwrite a file") from None
        finally:
            os.unlink(partial, dir_fd=directory)
    finally:
        os.close(directory)
    return target


def is_remote(path: str) -> bool:
    """Whether `path` is a URI other than file://."""
    return "://" in path and not path.startswith("file://")


def check_remote_uri(uri: str, endpoints: list[str], field: str) -> str:
    """`uri` when it is an s3:// URI whose endpoint the server's allow-list (`--s3-endpoint`; `aws`
    for AWS's own) holds, without credentials in it; DataPathError naming `field` and the fix
    otherwise. Other remote schemes are refused."""
    parts = urlsplit(uri)
    if parts.scheme != "s3":
        raise DataPathError(422, f"{field}: {uri!r}: the {parts.scheme}:// scheme is not read by this server; use a "
                                 "file under --data-dir or an s3:// URI at an allowed endpoint")
    if "@" in parts.netloc:
        raise DataPathError(422, f"{field}: the URI carries credentials; remove them (the server uses its own "
                                 "credentials for its allowed endpoints)")
    query = parse_qs(parts.query)
    override = query.get("endpoint_override", [None])[-1]
    endpoint = DEFAULT_S3_ENDPOINT if not override else (
        override if "://" in override else f"{query.get('scheme', ['https'])[-1]}://{override}")
    allowed = {e.rstrip("/") for e in endpoints}
    if endpoint.rstrip("/") not in allowed:
        listed = ", ".join(sorted(allowed)) or "none"
        raise DataPathError(403, f"{field}: the S3 endpoint {endpoint} is not in this server's allow-list ({listed}); "
                                 "use an allowed one, or have the operator add it with --s3-endpoint")
    return uri
