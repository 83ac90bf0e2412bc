"""Code packages for the tests, built in memory with `zipfile`: good ones for each runtime family and bad ones for
each way preparation must fail (lifecycle.md "Preparation"). Every builder returns the zip's bytes."""

from __future__ import annotations

import base64
import functools
import io
import os
import stat
import zipfile
from dataclasses import dataclass

# The runtime of the default test functions. Assumption: the server treats Python3.9 as available on a host that
# has some python3 (this machine has 3.11); override with STRATUS_TEST_PY_RUNTIME if it does not.
PY_RUNTIME = os.environ.get("STRATUS_TEST_PY_RUNTIME", "Python3.9")
PY_HANDLER = "index.main_handler"
NODE_HANDLER = "index.main_handler"

PY_SOURCE = '''\
def main_handler(event, context):
    return {"hello": "world", "marker": %r}
'''

NODE_SOURCE = """\
exports.main_handler = async (event, context) => ({ hello: "world", marker: %s });
"""

BOOTSTRAP_SOURCE = """\
#!/bin/bash
# A minimal custom runtime: the conformance tests only need it to pass preparation.
set -euo pipefail
exec sleep infinity
"""

UNIX = 3  # ZipInfo.create_system for archives made on Unix: the high 16 bits of external_attr are st_mode.


@dataclass(frozen=True)
class Entry:
    name: str
    data: bytes = b""
    mode: int = stat.S_IFREG | 0o644
    compress: int = zipfile.ZIP_DEFLATED


def build(entries: list[Entry]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for e in entries:
            info = zipfile.ZipInfo(e.name, date_time=(2024, 1, 1, 0, 0, 0))
            info.create_system = UNIX
            info.external_attr = (e.mode & 0xFFFF) << 16
            info.compress_type = e.compress
            zf.writestr(info, e.data)
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _py(marker: str = "") -> Entry:
    return Entry("index.py", (PY_SOURCE % marker).encode())


# ---------------------------------------------------------------------------------------------------------------
# Good packages


def python_hello(marker: str = "", *, handler_file: str = "index.py", extra: dict[str, bytes] | None = None) -> bytes:
    """`index.py` with `main_handler` (Handler `index.main_handler`). `marker` changes the bytes (and so the
    sha256 and usually the size) so that an update is observable; `extra` adds more files."""
    entries = [Entry(handler_file, (PY_SOURCE % marker).encode())]
    for name, data in (extra or {}).items():
        entries.append(Entry(name, data, compress=zipfile.ZIP_STORED))
    return build(entries)


def python_large(size: int, marker: str = "") -> bytes:
    """A valid Python package made big by `size` bytes of random data in an extra stored file: slow enough to
    prepare that a second call issued at once has a fair chance to find the record in a transitional status."""
    return python_hello(marker, extra={"payload.bin": os.urandom(size)})


def node_hello(marker: str = "") -> bytes:
    return build([Entry("index.js", (NODE_SOURCE % repr(marker)).encode())])


def custom_runtime(*, bootstrap_name: str = "scf_bootstrap", executable: bool = True) -> bytes:
    mode = stat.S_IFREG | (0o755 if executable else 0o644)
    return build(
        [
            Entry(bootstrap_name, BOOTSTRAP_SOURCE.encode(), mode=mode),
            Entry("README.txt", b"custom runtime package for the conformance suite\n"),
        ]
    )


def python_in_subdir() -> bytes:
    """Handler `src/index.main_handler`: the handler file may sit in a sub-directory."""
    return build([Entry("src/", b"", mode=stat.S_IFDIR | 0o755), Entry("src/index.py", (PY_SOURCE % "").encode())])


def symlink_inside() -> bytes:
    """A symlink that stays inside the package is fine."""
    return build([_py(), Entry("alias.py", b"index.py", mode=stat.S_IFLNK | 0o777, compress=zipfile.ZIP_STORED)])


def go_binary() -> bytes:
    """For Go the handler's file part names the executable: Handler `index.main_handler` needs `index`."""
    return build([Entry("index", b"#!/bin/sh\necho not really go\n", mode=stat.S_IFREG | 0o755)])


def layer_content(name: str = "lib.py") -> bytes:
    """Layer zips are unpacked under /opt; a plain file is enough."""
    return build([Entry(name, b"VALUE = 42\n")])


# ---------------------------------------------------------------------------------------------------------------
# Bad packages: each must end in CreateFailed / UpdateFailed / PublishFailed with a reason naming the culprit.


def not_a_zip() -> bytes:
    """Valid base64 once encoded, but not a zip archive."""
    return b"this is plain text, not a zip archive\n" * 64


def missing_handler_file() -> bytes:
    """Handler `index.main_handler` needs `index.py`; this package only has `main.py`."""
    return build([Entry("main.py", (PY_SOURCE % "").encode())])


def empty_zip() -> bytes:
    return build([])


def dotdot_entry() -> bytes:
    return build([_py(), Entry("../escape.py", b"print('escaped')\n")])


def absolute_entry() -> bytes:
    return build([_py(), Entry("/stratus-absolute.py", b"print('absolute')\n")])


def symlink_escape(target: str = "/etc") -> bytes:
    """A symlink entry (mode S_IFLNK, the data is the link target) pointing outside the package."""
    return build([_py(), Entry("etc_link", target.encode(), mode=stat.S_IFLNK | 0o777, compress=zipfile.ZIP_STORED)])


def fifo_entry() -> bytes:
    return build([_py(), Entry("a_fifo", b"", mode=stat.S_IFIFO | 0o644, compress=zipfile.ZIP_STORED)])


def device_entry() -> bytes:
    return build([_py(), Entry("a_device", b"", mode=stat.S_IFCHR | 0o644, compress=zipfile.ZIP_STORED)])


BOMB_UNPACKED = 1 << 30  # 1 GiB of zeros: twice the default 500 MB unpacked limit.


@functools.lru_cache(maxsize=1)
def zip_bomb() -> bytes:
    """About 1 MB on the wire, 1 GiB unpacked (one deflated file of zeros), plus a valid handler file."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        info = zipfile.ZipInfo("index.py", date_time=(2024, 1, 1, 0, 0, 0))
        info.create_system = UNIX
        info.external_attr = (stat.S_IFREG | 0o644) << 16
        zf.writestr(info, (PY_SOURCE % "").encode())
        info = zipfile.ZipInfo("bomb.bin", date_time=(2024, 1, 1, 0, 0, 0))
        info.create_system = UNIX
        info.external_attr = (stat.S_IFREG | 0o644) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        chunk = bytes(1 << 20)
        with zf.open(info, "w", force_zip64=True) as f:
            for _ in range(BOMB_UNPACKED // len(chunk)):
                f.write(chunk)
    return buf.getvalue()


# name -> (builder, runtime, handler, the entry name the failure reason must mention or None)
BAD_PACKAGES = {
    "not-a-zip": (not_a_zip, PY_RUNTIME, PY_HANDLER, None),
    "empty-zip": (empty_zip, PY_RUNTIME, PY_HANDLER, "index.py"),
    "missing-handler-file": (missing_handler_file, PY_RUNTIME, PY_HANDLER, "index.py"),
    "dotdot-entry": (dotdot_entry, PY_RUNTIME, PY_HANDLER, "../escape.py"),
    # Assumption: the reason quotes the entry name as stored; we accept it with or without the leading "/".
    "absolute-entry": (absolute_entry, PY_RUNTIME, PY_HANDLER, "stratus-absolute.py"),
    "symlink-to-etc": (symlink_escape, PY_RUNTIME, PY_HANDLER, "etc_link"),
    "symlink-dotdot": (functools.partial(symlink_escape, "../../../../../etc/passwd"), PY_RUNTIME, PY_HANDLER, "etc_link"),
    "fifo-entry": (fifo_entry, PY_RUNTIME, PY_HANDLER, "a_fifo"),
    "device-entry": (device_entry, PY_RUNTIME, PY_HANDLER, "a_device"),
    "zip-bomb": (zip_bomb, PY_RUNTIME, PY_HANDLER, None),
    "custom-runtime-no-bootstrap": (lambda: python_hello(), "CustomRuntime", PY_HANDLER, "scf_bootstrap"),
    "custom-runtime-bootstrap-not-executable": (
        functools.partial(custom_runtime, executable=False),
        "CustomRuntime",
        PY_HANDLER,
        "scf_bootstrap",
    ),
    "node-missing-index-js": (lambda: python_hello(), "Nodejs18.15", NODE_HANDLER, "index.js"),
}
