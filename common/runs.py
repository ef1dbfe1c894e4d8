"""A resumable run over a dataset: one JSON record per image, written atomically, so an
interrupted run picks up where it stopped; ``metrics.json`` is rebuilt from the records.

Run folder layout::

    config.json          the full config of the run
    records/<id>.json    per image: metrics per method, or the failure message
    masks/<id>.png       the delivered mask (0/255)
    overlays/<id>.png    figures for the first N images
    metrics.json         {"summary": {METHOD: {...}}, "per_image": {ID: {METHOD: {...}}}, "failures": {ID: msg}}
"""

from __future__ import annotations

import json
import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tqdm import tqdm

from common.config import flatten
from common.errors import RunError
from common.io import read_json, write_json
from common.metrics import METRIC_NAMES, summarise
from common.version import __version__

log = logging.getLogger(__name__)

# Keys of every run's CONFIG that may change between a run and its resumption without changing any
# result; each script adds its own (declared beside its CONFIG). "version" is the project's version
# that last wrote the run's config.json (absent from runs of versions before 0.5.0).
RESUMABLE_KEYS = frozenset({"out_dir", "device", "version"})

# Settings a version removed (flattened keys, as a run's config.json holds them), each with the value
# at which its run behaved as the code does now: a run folder holding one at that value resumes,
# at another value it is refused (its results came from code that no longer exists).
RETIRED_SETTINGS: dict[str, Any] = {
    # 0.5.0 (docs/experiments: st-01, st-09, st-18, rd-02, st-06, st-10, st-24)
    "student_weight": 0.0,
    "class_rule": "image",
    "colour.hair_removal": False,
    "colour.hair_kernel": 9,
    "colour.hair_min_contrast": 12.0,
    "colour.shades_of_gray_p": 0.0,
    "postprocess.component_rule": "largest",
    "ignore_uncertain_above": None,
    "zoom_fill": "black",
    "glare_p": 0.0,
    "paste.target_margin": 0.0,
    "augment_strength": 1.0,
    "mask_dir": None,
    # 0.6.0 (CHANGELOG.md)
    "prompts.n_negative_points": 0,
    "prompts.negative_max_cam": 0.1,
    "imbalance": "pos_weight",
    "colour_constancy": None,
    "colour_strength": 1.0,
}


def failed_metrics() -> dict[str, Any]:
    """The record of a method on an image that failed: IoU 0 and every other metric 0."""
    return {**{name: 0.0 for name in METRIC_NAMES}, "failed": True}


def fix_run_config(
    run_dir: str | Path, config: dict[str, Any], resumable: Iterable[str] = (), defaults: dict[str, Any] | None = None
) -> None:
    """Write ``config`` and the project's ``version`` to ``run_dir/config.json``, or, when a run
    already started there with another config, end with one line naming the keys that differ.
    Keys that may differ: ``resumable`` (plus :data:`RESUMABLE_KEYS`), settings the project
    added after the run started (absent from its ``config.json``) at their value in ``defaults``
    (a new setting's default keeps the behaviour the run had), and settings its ``config.json``
    holds at their default that ``config`` leaves out (they do not apply to the run), and settings a
    version removed, at the value :data:`RETIRED_SETTINGS` gives. Nested groups compare key by key."""
    run_dir = Path(run_dir)
    allowed = RESUMABLE_KEYS | set(resumable)
    config_path = run_dir / "config.json"
    if config_path.is_file():
        previous, current = flatten(read_json(config_path)), flatten(json.loads(json.dumps(config, default=str)))
        known = flatten(json.loads(json.dumps(defaults or {}, default=str)))
        added_at_default = {k for k in current if k not in previous and k in known and known[k] == current[k]}
        # a setting a newer version no longer records for this run (it does not apply) at its default, or
        # one it removed at the value that behaved as the code does now
        left_at_default = {
            k
            for k in previous
            if k not in current
            and (k in known and known[k] == previous[k] or k in RETIRED_SETTINGS and RETIRED_SETTINGS[k] == previous[k])
        }
        changed = sorted(
            k
            for k in set(previous) | set(current)
            if k.split(".")[0] not in allowed
            and k not in allowed | added_at_default | left_at_default
            and previous.get(k) != current.get(k)
        )
        if changed:
            raise RunError(
                f"{run_dir} holds a run with another config (keys {changed} differ); "
                "choose a new out_dir or delete that folder"
            )
    write_json(config_path, {**config, "version": __version__})


Deferred = Callable[[], dict[str, Any]]
"""What :meth:`ResumableRun.process`'s ``work`` may return instead of a record: a call that makes it."""


class ResumableRun:
    """A run folder of one record per image, whose config is fixed at its first start
    (:func:`fix_run_config`: a rerun with another config is refused, but for ``resumable`` keys)."""

    def __init__(
        self,
        run_dir: str | Path,
        config: dict[str, Any],
        resumable: Iterable[str] = (),
        defaults: dict[str, Any] | None = None,
    ) -> None:
        self.dir = Path(run_dir)
        self.records_dir = self.dir / "records"
        self.records_dir.mkdir(parents=True, exist_ok=True)
        fix_run_config(self.dir, config, resumable, defaults)

    def record_path(self, image_id: str) -> Path:
        return self.records_dir / f"{image_id}.json"

    def is_done(self, image_id: str) -> bool:
        return self.record_path(image_id).is_file()

    def done_ids(self) -> set[str]:
        """The ids that have a record (one directory listing, not a file check per id)."""
        return {
            name[:-5] for name in os.listdir(self.records_dir) if name.endswith(".json") and not name.startswith(".")
        }

    def load(self, image_id: str) -> dict[str, Any]:
        return read_json(self.record_path(image_id))

    def save(self, image_id: str, record: dict[str, Any]) -> None:
        write_json(self.record_path(image_id), record, indent=None)  # for programs: one line, written fast

    def process(
        self,
        ids: list[str],
        work: Callable[..., dict[str, Any] | Deferred],
        desc: str,
        load: Callable[[str], Any] | None = None,
        ahead: int = 2,
        progress: bool = True,
        write_behind: int = 0,
        on_saved: Callable[[], None] | None = None,
    ) -> None:
        """Call ``work(position_in_ids, image_id)`` for every id without a record, saving what it
        returns. With ``load``, ``work(position, image_id, load(image_id))``, the loads running
        ``ahead`` images in advance in a thread (decoding overlaps the work). An exception, in
        ``load`` or ``work``, is recorded as that image's failure and the run goes on. ``progress``:
        show a progress bar (off where a parent process shows one for several workers).

        ``work`` may return a :data:`Deferred` instead of the record: the rest of the image's work
        (scoring, writing), called in one writer thread while the next image is worked on, at most
        ``write_behind`` images behind (0: at once, on this thread); its exception is that image's
        failure too. Every deferred record is saved before this returns, also when interrupted.
        ``on_saved()`` is called after each record is saved (a progress count across processes)."""
        done = self.done_ids()
        todo = [(i, image_id) for i, image_id in enumerate(ids) if image_id not in done]
        if len(todo) < len(ids) and progress:
            log.info("resuming: %d of %d images already done", len(ids) - len(todo), len(ids))
        loaded = prefetch(load, [image_id for _, image_id in todo], ahead) if load else None
        writer = ThreadPoolExecutor(1, thread_name_prefix="records") if write_behind > 0 else None
        behind: deque[Future] = deque()
        try:
            for index, image_id in tqdm(todo, desc=desc, unit="img", disable=not progress):
                try:
                    record = work(index, image_id) if loaded is None else work(index, image_id, next(loaded).result())
                except KeyboardInterrupt:
                    raise
                except Exception as exc:  # one bad image must not stop the run
                    record = self._failure(image_id, exc)
                if not callable(record):
                    self._save_counted(image_id, record, on_saved)
                elif writer is None:
                    self._finish(image_id, record, on_saved)
                else:
                    behind.append(writer.submit(self._finish, image_id, record, on_saved))
                    while len(behind) > write_behind:
                        behind.popleft().result()
        finally:
            if writer is not None:
                writer.shutdown(wait=True)  # the images already worked on keep their records

    def _finish(self, image_id: str, deferred: Deferred, on_saved: Callable[[], None] | None = None) -> None:
        try:
            record = deferred()
        except Exception as exc:  # noqa: BLE001 - as in process: the image fails, the run goes on
            record = self._failure(image_id, exc)
        self._save_counted(image_id, record, on_saved)

    def _save_counted(self, image_id: str, record: dict[str, Any], on_saved: Callable[[], None] | None) -> None:
        self.save(image_id, record)
        if on_saved is not None:
            on_saved()

    @staticmethod
    def _failure(image_id: str, exc: Exception) -> dict[str, Any]:
        log.error("%s failed: %s", image_id, exc)
        return {"error": f"{type(exc).__name__}: {exc}"}

    def load_records(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The records of those of ``ids`` that have one, in the order of ``ids``, each read once."""
        done = self.done_ids()
        return {image_id: self.load(image_id) for image_id in ids if image_id in done}

    def write_metrics(self, ids: Iterable[str], methods: list[str], scored: bool = True) -> dict[str, Any]:
        """Rebuild ``metrics.json`` from the records of ``ids`` (:func:`metrics_from_records`)."""
        metrics = metrics_from_records(self.load_records(ids), methods, scored)
        write_json(self.dir / "metrics.json", metrics)
        return metrics


def metrics_from_records(records: dict[str, dict[str, Any]], methods: list[str], scored: bool = True) -> dict[str, Any]:
    """``metrics.json``'s content from the records of a run (id -> record): per image its scores,
    the summary per method, the failures. With ``scored`` (the data has ground truth), a failed
    image gets the failure record under every method, so it counts as IoU 0 in every mean;
    without, failures are only listed."""
    per_image: dict[str, dict] = {}
    failures: dict[str, str] = {}
    seen: list[str] = []
    for image_id, record in records.items():
        if "error" in record:
            failures[image_id] = record["error"]
        scores = record.get("metrics")
        if scores is None:
            if "error" in record and scored and record.get("has_truth", True):
                per_image[image_id] = {m: failed_metrics() for m in methods}
            continue
        per_image[image_id] = scores
        seen.extend(m for m in scores if m not in seen)
    ordered = [m for m in methods if m in seen] + [m for m in seen if m not in methods]
    return {"summary": summarise(per_image, ordered), "per_image": per_image, "failures": failures}


def prefetch(load: Callable[[str], Any], ids: list[str], ahead: int) -> Iterator[Future]:
    """Futures of ``load(id)`` for ``ids`` in order, each started ``ahead`` items before it is
    wanted, in one worker thread (a failed load raises when its result is asked for)."""
    with ThreadPoolExecutor(1) as pool:
        pending: deque[Future] = deque(pool.submit(load, i) for i in ids[:ahead])
        for position in range(len(ids)):
            if position + ahead < len(ids):
                pending.append(pool.submit(load, ids[position + ahead]))
            yield pending.popleft()
