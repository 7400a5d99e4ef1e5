"""The gallery in use at the gate: loaded at start, replaced by signed updates from the gateway.

An update on the gate's gallery topic is checked (version, then signature, then base64),
installed atomically through the `GalleryStore` and acknowledged with the version in use and the
people whose templates it removed. Next to the gallery a template-free copy of the access list is
kept, so card and PIN keep working when the gallery or its key is unusable (see
docs/decisions/0003-gallery-and-access-list.md).
"""

from __future__ import annotations

import base64
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contracts.gallery import Gallery, GalleryError, gallery_from_json, gallery_to_json
from contracts.models import GalleryAck, GalleryUpdate
from contracts.signing import MessageVerifier, SignatureError
from contracts.topics import GateChannel
from edge.gate.gallery import GalleryStore
from edge.gate.matching import TemplateIndex
from edge.gate.reporting import GateReporter
from edge.mqtt import ReceivedMessage

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GalleryInUse:
    """The gallery decisions are made with, its template index, and why faces are off (or None)."""

    gallery: Gallery
    index: TemplateIndex | None
    face_error: str | None


class GallerySync:
    """Keeps the gate's gallery: the stored one at start, then each valid update it receives."""

    def __init__(
        self,
        store: GalleryStore,
        verifier: MessageVerifier,
        reporter: GateReporter,
        *,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.verifier = verifier
        self.reporter = reporter
        self.on_change = on_change  # called when a new gallery is in use (the tracker resets)
        self._lock = threading.Lock()
        self._in_use = GalleryInUse(Gallery.empty(), None, "gallery not loaded")

    @property
    def in_use(self) -> GalleryInUse:
        """The gallery in use now (replaced as a whole, never changed in place)."""
        with self._lock:
            return self._in_use

    @property
    def version(self) -> int:
        return self.in_use.gallery.version

    @property
    def face_error(self) -> str | None:
        return self.in_use.face_error

    def load(self) -> None:
        """Load the stored gallery; on failure the face path stops (card/PIN still work)."""
        try:
            gallery = self.store.load()
        except GalleryError as exc:
            log.error("face recognition disabled, door stays locked for faces: %s", exc)
            with self._lock:
                self._in_use = GalleryInUse(self._access_list_fallback(), None, str(exc))
            return
        if gallery.version > 0:
            self._save_access_list(gallery)
        self._use(gallery)

    def install(self, blob: bytes, *, force: bool = False) -> Gallery:
        """Install a new encrypted gallery atomically; the old one stays if this one is bad."""
        gallery = self.store.install(blob, force=force)
        self._save_access_list(gallery)
        self._use(gallery)
        return gallery

    @property
    def access_list_path(self) -> Path:
        """Where the template-free access list copy lives (next to the gallery)."""
        return self.store.path.with_name(self.store.path.name + ".access.json")

    def _access_list_fallback(self) -> Gallery:
        """The last access list (no templates) so card/PIN keep working without the gallery."""
        path = self.access_list_path
        try:
            people_only = gallery_from_json(path.read_bytes())
        except FileNotFoundError:
            log.error("no access list at %s: card and PIN are denied too", path)
            return Gallery.empty()
        except (OSError, ValueError) as exc:
            log.error("access list %s unusable, card and PIN are denied too: %s", path, exc)
            return Gallery.empty()
        log.warning("card and PIN use the access list of gallery version %s", people_only.version)
        return people_only

    def _use(self, gallery: Gallery) -> None:
        index = None
        if len(gallery.template_owners):
            index = TemplateIndex.build(
                gallery.template_owners,
                gallery.encodings,
                impostor_ids=gallery.impostor_owners,
                impostors=gallery.impostors,
            )
        with self._lock:
            self._in_use = GalleryInUse(gallery, index, None)
            self.on_change()
        log.info(
            "gallery version %s in use: %s people, %s templates, %s impostor examples",
            gallery.version,
            len(gallery.people),
            len(gallery.template_owners),
            len(gallery.impostor_owners),
        )

    def _save_access_list(self, gallery: Gallery) -> None:
        """Keep a template-free copy of the people so card/PIN survive a bad gallery or key.

        It holds no biometric data (PIN hashes and card ids only); mode 0600. See
        docs/decisions/0003-gallery-and-access-list.md.
        """
        access_only = Gallery(
            version=gallery.version,
            people=gallery.people,
            template_owners=(),
            encodings=np.zeros((0, 128), dtype=np.float32),
        )
        path = self.access_list_path
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(gallery_to_json(access_only))
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)

    # ----------------------------------------------------------------- updates over MQTT

    def on_update(self, msg: ReceivedMessage) -> None:
        """A gallery update from the gateway: check, install and acknowledge it."""
        update = self.reporter.parse(GalleryUpdate, msg, "gallery update")
        if update is None:
            return
        in_use = self.in_use
        current, face_error = in_use.gallery.version, in_use.face_error
        if face_error is None and update.version == current:
            # The retained update is delivered again on every reconnect: already in use.
            self._ack(update, applied=True, error=None)
            return
        if face_error is None and update.version < current:
            self._ack(
                update,
                applied=False,
                error=f"version {update.version} is older than version {current} in use",
            )
            return
        # Only now is the update about to change who may enter, so only now does its signature
        # matter: the retained copy of the version in use may predate a key rotation.
        try:
            self.verifier.verify(msg.topic, msg.payload)
        except SignatureError as exc:
            self.reporter.attack("gallery", exc.problem, str(exc), None)
            self._ack(update, applied=False, error=f"refused: {exc}")
            return
        try:
            blob = base64.b64decode(update.blob_b64, validate=True)
        except ValueError:
            self.reporter.reject("gallery update", ValueError("blob_b64 is not valid base64"))
            self._ack(update, applied=False, error="blob_b64 is not valid base64")
            return
        before = self._template_owners()
        try:
            # With a broken current gallery any valid version repairs it (force).
            gallery = self.install(blob, force=face_error is not None)
        except (ValueError, GalleryError) as exc:
            log.error(
                "gallery update %s rejected, keeping version %s: %s",
                update.version,
                current,
                exc,
            )
            self._ack(update, applied=False, error=str(exc))
            return
        if gallery.version != update.version:
            log.warning(
                "gallery update announced version %s but holds %s", update.version, gallery.version
            )
        # Whose face templates this version removed: the gateway confirms erasures with it.
        erased = sorted(before - set(gallery.template_owners))
        self._ack(update, applied=True, error=None, erased=erased)

    def _template_owners(self) -> set[str]:
        try:
            return set(self.store.load().template_owners)
        except (GalleryError, ValueError, OSError):
            return set()

    def _ack(
        self,
        update: GalleryUpdate,
        *,
        applied: bool,
        error: str | None,
        erased: list[str] | None = None,
    ) -> None:
        ack = GalleryAck(
            producer=self.reporter.producer,
            correlation_id=update.correlation_id,
            version=self.version,
            applied=applied,
            error=error,
            erased_person_ids=erased or [],
        )
        self.reporter.send(GateChannel.GALLERY_ACK, ack)
