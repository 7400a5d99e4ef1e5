"""The gate's gallery file: load at start, install updates atomically, keep one backup.

The document (format) and its encryption and keys are shared with the gateway: contracts/gallery.py
and contracts/gallery_crypto.py.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import tempfile
import threading
from pathlib import Path

from contracts.gallery import Gallery, GalleryError
from contracts.gallery_crypto import decrypt_gallery, encrypt_gallery

logger = logging.getLogger(__name__)


# --- store ------------------------------------------------------------------------------------


class GalleryStore:
    """The gallery file on disk: load at start, install updates atomically, keep one backup."""

    def __init__(self, path: Path, key: bytes) -> None:
        self._path = path
        self._key = key
        self._lock = threading.Lock()
        self._cached: tuple[tuple[int, int, int], int] | None = None  # (stat id, version)

    @property
    def path(self) -> Path:
        """The gallery file."""
        return self._path

    @property
    def prev_path(self) -> Path:
        """Where the previous gallery file is kept after an install or save."""
        return self._path.with_name(self._path.name + ".prev")

    def load(self) -> Gallery:
        """Read and decrypt the gallery; a missing file gives the empty version-0 gallery."""
        try:
            with self._path.open("rb") as handle:
                st = os.fstat(handle.fileno())
                blob = handle.read()
        except FileNotFoundError:
            logger.info("no gallery file at %s; starting with an empty gallery", self._path)
            return Gallery.empty()
        except OSError as exc:
            raise GalleryError(f"cannot read gallery file {self._path}: {exc.strerror}") from None
        gallery = decrypt_gallery(blob, self._key, source=str(self._path))
        self._cached = ((st.st_ino, st.st_size, st.st_mtime_ns), gallery.version)
        return gallery

    def current_version(self) -> int:
        """Version of the installed gallery (0 when there is none)."""
        try:
            identity = self._identity()
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise GalleryError(f"cannot read gallery file {self._path}: {exc.strerror}") from None
        if self._cached is not None and self._cached[0] == identity:
            return self._cached[1]
        return self.load().version

    def install(self, blob: bytes, *, force: bool = False) -> Gallery:
        """Validate an encrypted gallery update and make it current; refuses stale versions."""
        gallery = decrypt_gallery(blob, self._key)
        with self._lock:
            try:
                current: int | None = self.current_version()
            except GalleryError as exc:
                # An unreadable current file (e.g. after a key rotation) must not block recovery;
                # it is kept as .prev for inspection.
                logger.warning("current gallery unreadable, replacing it: %s", exc)
                current = None
            if current is not None and gallery.version <= current:
                if not force:
                    raise GalleryError(
                        f"stale gallery version {gallery.version}, current {current}"
                    )
                logger.warning(
                    "forcing gallery version %s over current version %s", gallery.version, current
                )
            self._write(blob, gallery.version)
        logger.info(
            "installed gallery version %s (%s people, %s templates) at %s, previous version %s",
            gallery.version,
            len(gallery.people),
            len(gallery.template_owners),
            self._path,
            current,
        )
        return gallery

    def save(self, g: Gallery) -> None:
        """Encrypt a gallery and write it atomically, keeping the previous file as .prev."""
        blob = encrypt_gallery(g, self._key)
        with self._lock:
            self._write(blob, g.version)
        logger.info("saved gallery version %s at %s", g.version, self._path)

    def _identity(self) -> tuple[int, int, int]:
        st = self._path.stat()
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _write(self, blob: bytes, version: int) -> None:
        directory = self._path.parent
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{self._path.name}.", suffix=".tmp")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(blob)
                handle.flush()
                os.fsync(handle.fileno())
            if self._path.exists():
                self._keep_previous()
            tmp.replace(self._path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_directory(directory)
        self._cached = (self._identity(), version)

    def _keep_previous(self) -> None:
        """Point .prev at the current file without ever leaving the gallery path missing."""
        directory = self._path.parent
        staging = directory / f".{self._path.name}.prev.{secrets.token_hex(4)}.tmp"
        try:
            try:
                os.link(self._path, staging)
            except OSError:
                shutil.copy2(self._path, staging)
            staging.replace(self.prev_path)
        except BaseException:
            staging.unlink(missing_ok=True)
            raise


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
