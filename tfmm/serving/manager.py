"""Models, versions and version policies: TF Serving's file-system source and manager, in small.

Version directories are integer names under each model's base path; other names
(such as `.tmp-5` while an export is written) are ignored. New versions are loaded
before old ones are unloaded (availability preserving), a version that fails to load
is retried on later polls, and the whole config can be replaced while serving.
"""

import logging
import re
import threading
import time
from pathlib import Path

from tfmm.serving.servable import Servable, looks_complete
from tfmm.serving.status import ServingError, invalid, not_found

log = logging.getLogger("tfmm.serving")
MAX_LOAD_ATTEMPTS = 5


class VersionState:
    def __init__(self):
        self.state, self.servable, self.error, self.attempts = "START", None, "", 0


class ModelEntry:
    def __init__(self, config):
        self.config = config
        self.versions = {}  # int → VersionState


def _policy_versions(config, available):
    policy = config.model_version_policy
    which = policy.WhichOneof("policy_choice")
    if which == "all":
        return set(available)
    if which == "specific":
        return set(available) & set(policy.specific.versions)
    count = policy.latest.num_versions if which == "latest" and policy.latest.num_versions else 1
    return set(sorted(available)[-count:])


class ModelManager:
    def __init__(self, config, on_change=None):
        self._lock = threading.RLock()
        self._models = {}
        self._stop = threading.Event()
        self._thread = None
        self.on_change = on_change
        self.reload_config(config)

    # -------------------------------------------------------------- config and polling

    def reload_config(self, config):
        """Applies a new `ModelServerConfig` exactly: models not in it are unloaded."""
        with self._lock:
            wanted = {m.name: m for m in config.model_config_list.config}
            for name in list(self._models):
                if name not in wanted:
                    for state in self._models[name].versions.values():
                        state.servable, state.state = None, "END"
                    del self._models[name]
            for name, model_config in wanted.items():
                entry = self._models.setdefault(name, ModelEntry(model_config))
                entry.config = model_config
        self.poll()

    def poll(self):
        with self._lock:
            entries = list(self._models.items())
        for name, entry in entries:
            self._poll_model(name, entry)

    def _poll_model(self, name, entry):
        base = Path(entry.config.base_path)
        available = []
        if base.is_dir():
            for child in base.iterdir():
                if child.is_dir() and re.fullmatch(r"\d+", child.name) and looks_complete(child):
                    available.append(int(child.name))
        wanted = _policy_versions(entry.config, available)
        for version in sorted(wanted):
            state = entry.versions.setdefault(version, VersionState())
            if state.state in ("AVAILABLE",) or state.attempts >= MAX_LOAD_ATTEMPTS:
                continue
            state.state, state.attempts = "LOADING", state.attempts + 1
            try:
                servable = Servable(name, version, base / str(version))
            except Exception as error:  # a broken export must not take the server down
                state.state, state.error = "END", f"{type(error).__name__}: {error}"
                log.warning("model %s version %s failed to load (attempt %d): %s", name, version, state.attempts, error)
                continue
            with self._lock:
                state.servable, state.state, state.error = servable, "AVAILABLE", ""
            log.info("model %s version %s AVAILABLE", name, version)
        with self._lock:
            # Availability preserving: old versions go only once a wanted version serves.
            if not any(entry.versions[v].state == "AVAILABLE" for v in wanted if v in entry.versions) and wanted:
                return self._changed()
            for version, state in entry.versions.items():
                if version not in wanted and state.state == "AVAILABLE":
                    state.state = "UNLOADING"
                    state.servable, state.state = None, "END"
                    log.info("model %s version %s unloaded", name, version)
        self._changed()

    def _changed(self):
        if self.on_change:
            self.on_change()

    def start_polling(self, seconds):
        if seconds <= 0:
            return

        def loop():
            while not self._stop.wait(seconds):
                try:
                    self.poll()
                except Exception:  # keep polling whatever one pass hit
                    log.exception("version poll failed")

        self._thread = threading.Thread(target=loop, name="version-poller", daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()

    # -------------------------------------------------------------------- lookups

    def model_names(self):
        with self._lock:
            return sorted(self._models)

    def resolve(self, name, version=None, label=None):
        """The servable for a request: latest available, a specific version, or a label."""
        with self._lock:
            entry = self._models.get(name)
            if label is not None:
                if entry is None:
                    raise not_found(f"Servable not found for request: Latest({name})")
                if label not in entry.config.version_labels:
                    raise invalid(f"Unrecognized servable version label: {label}")
                version = entry.config.version_labels[label]
            if entry is not None:
                ready = {v: s for v, s in entry.versions.items() if s.state == "AVAILABLE"}
                if version is None and ready:
                    return ready[max(ready)].servable
                if version is not None and version in ready:
                    return ready[version].servable
            spec = f"Latest({name})" if version is None else f"Specific({name}, {version})"
            raise not_found(f"Servable not found for request: {spec}")

    def status(self, name, version=None, label=None):
        """[(version, state, error)] as GetModelStatus reports them."""
        with self._lock:
            entry = self._models.get(name)
            if entry is None or not entry.versions:
                raise not_found(f"Could not find any versions of model {name}")
            if label is not None:
                if label not in entry.config.version_labels:
                    raise invalid(f"Unrecognized servable version label: {label}")
                version = entry.config.version_labels[label]
            if version is not None:
                if version not in entry.versions:
                    raise not_found(f"Could not find version {version} of model {name}")
                states = {version: entry.versions[version]}
            else:
                states = entry.versions
            return [(v, s.state, s.error) for v, s in sorted(states.items(), reverse=True)]

    def knows(self, name):
        """Whether `name` is a configured model (metrics label only those: client-chosen names make no series)."""
        with self._lock:
            return name in self._models

    def any_available(self):
        with self._lock:
            return any(s.state == "AVAILABLE" for e in self._models.values() for s in e.versions.values())

    def wait_until_available(self, name, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                return self.resolve(name)
            except ServingError:
                time.sleep(0.1)
        raise TimeoutError(f"model {name} not available after {timeout} s")
