"""Model control, as Triton names it: which model versions are served, changed while serving.

- `none`: what was loaded at start is served until the server stops.
- `poll`: the repository is rescanned every `poll_interval_s`; a new version (or model) is loaded
  and warmed up beside the old one and served once ready; a version no longer wanted (a newer one
  is ready, or its folder is gone) stops taking new requests and finishes the ones it has.
- `explicit`: Triton's repository extension loads and unloads models on request (HTTP and gRPC).

Whatever fails to load (a corrupt file, a wrong shape) leaves what was serving untouched; it
shows in the index as UNAVAILABLE with the reason, in `skipfold_model_load_failures`, and in one
log line, and poll mode retries it only once its file changes.

Requests hold the `ServedModel` they started with, and the registry's tables are replaced, never
changed in place, so a swap never disturbs a request in flight: an unloaded version's session is
freed when its last request ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Any

from skipfold.formats.model_config import RepositoryError
from skipfold.formats.model_repository import ModelRepository
from skipfold.service.failures import ApiError
from skipfold.service.registry import ModelRegistry, load_model
from skipfold.service.served_model import ServedModel
from skipfold.service.settings import Settings

log = logging.getLogger("skipfold.service")

READY, LOADING, UNAVAILABLE = "READY", "LOADING", "UNAVAILABLE"


@dataclass(frozen=True)
class VersionState:
    state: str
    reason: str = ""
    file: tuple[int, ...] | None = None  # the failed model.onnx, as _file_signature saw it


def _file_signature(path: os.PathLike) -> tuple[int, ...] | None:
    """Which file, and which contents as far as the file system can tell: taken before a load,
    so a file still being written when the load failed is retried once it is complete."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns


class ModelControl:
    """Loads and unloads versions of the registry's models; one change at a time."""

    def __init__(self, registry: ModelRegistry, settings: Settings, state: Any) -> None:
        self.registry = registry
        self.settings = settings
        self.app_state = state  # engine and metrics: a swapped-out version's batcher retires
        self.repository = ModelRepository(settings.repository)
        self.pinned = settings.pinned_versions()
        self.states: dict[tuple[str, int], VersionState] = {}
        self.lock = asyncio.Lock()
        self._poller: asyncio.Task | None = None

    # -- the index ---------------------------------------------------------------------------

    def index(self, ready_only: bool = False) -> list[dict[str, str]]:
        """Every version in the repository or loaded: its state and, if not ready, why."""
        try:
            on_disk = self.repository.models()
        except RepositoryError:
            on_disk = {}
        loaded = self.registry.models
        entries: dict[tuple[str, int], VersionState] = {}
        for name, numbers in on_disk.items():
            for number in numbers:
                entries[(name, number)] = VersionState(UNAVAILABLE, "not loaded")
        entries.update(self.states)
        for name, versions in loaded.items():
            for number in versions:
                entries[(name, number)] = VersionState(READY)
        rows = [
            {"name": name, "version": str(number), "state": s.state, "reason": s.reason}
            for (name, number), s in sorted(entries.items())
        ]
        return [r for r in rows if r["state"] == READY] if ready_only else rows

    # -- explicit: Triton's repository extension ---------------------------------------------

    def _check_explicit(self, action: str) -> None:
        if self.settings.model_control != "explicit":
            raise ApiError(
                400,
                f"cannot {action} models: model control is {self.settings.model_control!r} "
                "(start the server with --model-control explicit)",
            )

    async def load(self, name: str) -> None:
        """Load (or reload) `name`: its pinned versions, else its latest; ApiError if it fails,
        with what was serving left as it was."""
        self._check_explicit("load")
        async with self.lock:
            try:
                numbers = self._wanted(name, self.repository.models())
            except RepositoryError as exc:
                raise ApiError(400, str(exc)) from None
            if not numbers:
                raise ApiError(
                    404, f"model {name!r} is not in the repository {self.repository.path}"
                )
            failures = await self._load_versions(name, numbers, keep_others=False)
        if failures:
            raise ApiError(400, f"failed to load {name!r}: {failures[0]}")

    async def unload(self, name: str) -> None:
        self._check_explicit("unload")
        async with self.lock:
            if name not in self.registry.models:
                raise ApiError(404, f"model {name!r} is not loaded")
            for number in list(self.registry.models[name]):
                self._drop(name, number, "unloaded")

    # -- poll ----------------------------------------------------------------------------------

    def start(self) -> None:
        if self.settings.model_control == "poll":
            self._poller = asyncio.get_running_loop().create_task(self._poll_forever())

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.poll_interval_s)
            try:
                await self.poll()
            except Exception:  # a poll must never end polling
                log.exception("repository poll failed")

    async def poll(self) -> None:
        """One rescan: load what is new, drop what is no longer wanted."""
        async with self.lock:
            try:
                on_disk = await asyncio.to_thread(self.repository.models)
            except RepositoryError as exc:
                log.warning("repository poll: %s", exc)
                return
            names = list(self.pinned) or sorted(set(on_disk) | set(self.registry.models))
            for name in names:
                wanted = self._wanted(name, on_disk)
                new = [n for n in wanted if self._should_load(name, n)]
                if new:
                    await self._load_versions(name, new, keep_others=True)
                self._retire_unwanted(name, wanted)

    def _should_load(self, name: str, number: int) -> bool:
        if number in self.registry.models.get(name, {}):
            return False
        failed = self.states.get((name, number))
        if failed is None or failed.state != UNAVAILABLE or failed.file is None:
            return True
        return _file_signature(self.repository.model_file(name, number)) != failed.file

    def _retire_unwanted(self, name: str, wanted: list[int]) -> None:
        """Versions neither wanted nor needed: with pins, the unpinned; else every version
        older than the newest one ready, and any whose folder is gone."""
        loaded = self.registry.models.get(name, {})
        if not loaded:
            return
        on_disk = set(wanted) | {n for n in loaded if self.repository.model_file(name, n).is_file()}
        if self.pinned.get(name):
            keep = {n for n in loaded if n in wanted}
        else:
            present = [n for n in loaded if n in on_disk]
            keep = {max(present)} if present else set()
        for number in sorted(set(loaded) - keep):
            gone = not self.repository.model_file(name, number).is_file()
            self._drop(name, number, "removed from the repository" if gone else "newer version")

    # -- loading and swapping ------------------------------------------------------------------

    def _wanted(self, name: str, on_disk: dict[str, list[int]]) -> list[int]:
        numbers = on_disk.get(name, [])
        pins = self.pinned.get(name)
        if pins:
            return [n for n in pins if n in numbers]
        return numbers[-1:]

    async def _load_versions(
        self, name: str, numbers: list[int], *, keep_others: bool
    ) -> list[str]:
        """Load and warm up each version beside what serves, then swap them in together; the
        versions that failed stay out. Returns the failures' reasons."""
        loaded: dict[int, ServedModel] = {}
        failures: list[str] = []
        for number in numbers:
            self.states[(name, number)] = VersionState(LOADING)
            signature = _file_signature(self.repository.model_file(name, number))
            try:
                loaded[number] = await asyncio.to_thread(self._load_one, name, number)
            except Exception as exc:  # whatever the runtime raises: the version stays out
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                self.states[(name, number)] = VersionState(UNAVAILABLE, reason, signature)
                self.app_state.metrics.load_failures.labels(name).inc()
                log.error("model %s version %s failed to load: %s", name, number, reason)
                failures.append(reason)
        if loaded:
            current = self.registry.models.get(name, {})
            # explicit: the versions asked for; one that failed to reload keeps serving
            kept = current if keep_others else {n: m for n, m in current.items() if n in numbers}
            versions = {**kept, **loaded}
            for number in set(current) - set(versions):
                self._forget(current[number])
                self.states[(name, number)] = VersionState(UNAVAILABLE, "unloaded")
            for number in loaded:
                if number in current:
                    self._forget(current[number])
                self.states.pop((name, number), None)
                log.info("model %s version %s loaded and serving", name, number)
            self.registry.replace(name, versions)
            self.app_state.metrics.loads.labels(name).inc(len(loaded))
        return failures

    def _load_one(self, name: str, number: int) -> ServedModel:
        model = load_model(self.repository, name, number, self.settings)
        ModelRegistry.warm_up_model(model, self.settings.warmup_runs)
        return model

    def _drop(self, name: str, number: int, reason: str) -> None:
        versions = dict(self.registry.models.get(name, {}))
        model = versions.pop(number, None)
        if model is None:
            return
        self._forget(model)
        self.registry.replace(name, versions or None)
        self.states[(name, number)] = VersionState(UNAVAILABLE, reason)
        log.info("model %s version %s unloaded (%s)", name, number, reason)

    def _forget(self, model: ServedModel) -> None:
        engine = getattr(self.app_state, "engine", None)
        if engine is not None:
            engine.retire(model)
