"""Feast's local file registry, written atomically (loaded by Feast by name, see feast_repo.feast_config).

Feast 0.67's FileRegistryStore truncates the registry file and writes it in place: a process reading
it meanwhile (a training set, a materialization of another run) parses a partial file. This one
writes a temporary file next to it and renames it over the registry, so readers see the old registry
or the new one. (The S3 registry store writes with one PUT, already atomic.)
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

from feast.infra.registry.file import FileRegistryStore
from feast.utils import _utc_now


class AtomicFileRegistryStore(FileRegistryStore):  # Feast requires the suffix RegistryStore
    def _write_registry(self, registry_proto) -> None:
        registry_proto.version_id = str(uuid.uuid4())
        registry_proto.last_updated.FromDatetime(_utc_now())
        folder = Path(self._filepath).parent
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{Path(self._filepath).name}.tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(registry_proto.SerializeToString())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self._filepath)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
