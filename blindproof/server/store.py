"""On-disk model store keyed by content digest; survives restarts, never exposes partial uploads.

Layout under the store root::

    models/<id>.safetensors   the model file (id = hex of its BLAKE3 content digest)
    models/<id>.json          deployment info (key id, label, size, creation time)
    uploads/                  uploads in progress; emptied at start-up

A deployment exists exactly when its ``.safetensors`` file exists: the info file is written first and
the model file is renamed into place last, so a crash at any point leaves no half deployment.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path

from blindproof.models.serialize import DIGEST_PREFIX, LoadedModel, canonical_json

_ID = re.compile(r"^[0-9a-f]{64}$")


def private(path: Path, mode: int) -> None:
    """Make ``path`` the owner's only (``mode`` 0600 or 0700) unless it already is."""
    import stat
    try:
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            os.chmod(path, mode)
    except FileNotFoundError:
        pass


class UnknownDeploymentError(KeyError):
    """No deployment with this id."""


def deployment_id(digest: str) -> str:
    """The store id of a content digest (its hex part); ValueError for a malformed digest."""
    if not isinstance(digest, str) or not digest.startswith(DIGEST_PREFIX) or \
            not _ID.match(digest[len(DIGEST_PREFIX):]):
        raise ValueError(f"digest must look like '{DIGEST_PREFIX}<64 hex digits>', got {digest!r:.80}")
    return digest[len(DIGEST_PREFIX):]


def check_id(dep_id: str) -> str:
    """Validate a deployment id (64 lowercase hex digits)."""
    if not isinstance(dep_id, str) or not _ID.match(dep_id):
        raise ValueError(f"deployment id must be 64 lowercase hex digits, got {dep_id!r:.80}")
    return dep_id


@dataclass(frozen=True)
class DeploymentInfo:
    """What the store records about a deployment (no tensors, no keys)."""

    deployment_id: str
    digest: str
    key_id: str
    label: str
    model_json: str
    size_bytes: int
    created_unix: float


class ModelStore:
    """Deployments on disk plus a small in-memory cache of loaded models."""

    def __init__(self, root: str | os.PathLike, device: str = "cpu", cache_size: int = 8) -> None:
        self.root = Path(root)
        self.device = device
        self.models_dir = self.root / "models"
        self.uploads_dir = self.root / "uploads"
        for d in (self.root, self.models_dir, self.uploads_dir):  # owner only: served models are private
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
            private(d, 0o700)
        self._cache: OrderedDict[str, LoadedModel] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._recover()

    def _recover(self) -> None:
        """Drop leftovers of interrupted uploads and info files without a model."""
        for p in self.uploads_dir.iterdir():
            p.unlink(missing_ok=True)
        for p in self.models_dir.glob("*.json"):
            if not p.with_suffix(".safetensors").exists():
                p.unlink(missing_ok=True)
        for p in self.models_dir.glob("*.tmp"):
            p.unlink(missing_ok=True)
        for p in self.models_dir.iterdir():  # stores written before files were made private
            private(p, 0o600)

    def _model_path(self, dep_id: str) -> Path:
        return self.models_dir / f"{check_id(dep_id)}.safetensors"

    def new_upload(self) -> Path:
        """A fresh temporary file for an upload in progress."""
        fd, path = tempfile.mkstemp(dir=self.uploads_dir, suffix=".upload")
        os.close(fd)
        return Path(path)

    def exists(self, dep_id: str) -> bool:
        return self._model_path(dep_id).exists()

    def info(self, dep_id: str) -> DeploymentInfo:
        """Recorded info of a deployment; UnknownDeploymentError if there is none."""
        path = self._model_path(dep_id)
        if not path.exists():
            raise UnknownDeploymentError(dep_id)
        return DeploymentInfo(**json.loads(path.with_suffix(".json").read_text()))

    def list(self) -> list[DeploymentInfo]:
        """Every deployment, oldest first."""
        out = []
        for p in self.models_dir.glob("*.safetensors"):
            try:
                out.append(self.info(p.stem))
            except (UnknownDeploymentError, FileNotFoundError, ValueError):
                continue  # deleted concurrently
        return sorted(out, key=lambda d: d.created_unix)

    def commit(self, upload: Path, loaded: LoadedModel, key_id: str, label: str) -> DeploymentInfo:
        """Move a verified upload into place (atomically) and cache its model."""
        dep_id = deployment_id(loaded.digest)
        path = self._model_path(dep_id)
        info = DeploymentInfo(dep_id, loaded.digest, key_id, label, canonical_json(loaded.description),
                              upload.stat().st_size, time.time())
        tmp_info = path.with_suffix(".json.tmp")
        fd = os.open(tmp_info, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(asdict(info)))
        os.chmod(upload, 0o600)
        os.replace(tmp_info, path.with_suffix(".json"))
        os.replace(upload, path)  # the commit point
        self._remember(dep_id, loaded)
        return info

    def delete(self, dep_id: str) -> None:
        """Remove a deployment; running sessions keep their loaded model until they end."""
        path = self._model_path(dep_id)
        try:
            path.unlink()
        except FileNotFoundError:
            raise UnknownDeploymentError(dep_id) from None
        path.with_suffix(".json").unlink(missing_ok=True)
        with self._lock:
            self._cache.pop(dep_id, None)

    def load(self, dep_id: str) -> LoadedModel:
        """The loaded model of a deployment (re-verified against its digest when read from disk)."""
        with self._lock:
            if dep_id in self._cache:
                self._cache.move_to_end(dep_id)
                return self._cache[dep_id]
        path = self._model_path(dep_id)
        if not path.exists():
            raise UnknownDeploymentError(dep_id)
        from blindproof.server.integer_executor import load_deployment  # float or integer model file
        loaded = load_deployment(path, expected_digest=DIGEST_PREFIX + dep_id)
        self._remember(dep_id, loaded)
        return loaded

    def _remember(self, dep_id: str, loaded: LoadedModel) -> None:
        loaded.model.to(self.device)
        with self._lock:
            self._cache[dep_id] = loaded
            self._cache.move_to_end(dep_id)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
