"""The extraction run: clips -> record shards, resumable and split across processes.

Clip i belongs to shard i % num_shards, and shard s to process s % process_count, so the shard files'
contents depend only on the source and the config, never on how many processes ran or how often the run
was restarted. Each process writes only its own shards. Progress lives in WORKDIR/progress/:

    plan.json                       what this folder is being extracted with; a restart must match it
    shard-S-of-N/CLIP.rec           a finished clip's record bytes (written atomically, salsa.io)
    shard-S-of-N/CLIP.skip.json     an unusable clip and why
    shard-S-of-N.json               shard S finished: its clips, written and skipped

A shard is assembled from its clips once all are done (salsa.io.atomic_file), then its clip folder is
removed. Damaged progress is redone, not trusted: on a restart, a clip's .rec that does not decode or a
.skip.json that does not parse is deleted and the clip extracted again, and a finished shard of this
process whose file does not open is deleted with its summary and extracted again (one warning line each);
the clip folder of a finished shard, left by a run killed just after the shard's summary, is removed.
The process that completes the last shard writes WORKDIR/extraction.json (data_pipelines/features/
extraction.py); until then the folder holds no complete set and reads as empty.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from typing import Any

from array_record.python.array_record_module import ArrayRecordReader, ArrayRecordWriter

from data_pipelines.extract import components as components_lib
from data_pipelines.extract import features, sources
from data_pipelines.features import durations, extraction, records
from data_pipelines.media.errors import MediaError
from salsa import io
from salsa.errors import UserError
from salsa.inference import encoders

PROGRESS = "progress"
_WRITER_OPTIONS = "group_size:1"  # as records.write_shards: random access to one record per seek


class ExtractError(UserError):
    """The workdir or the run's settings do not allow extraction; the message says why."""


@dataclasses.dataclass
class Result:
    """What one process did: clips it extracted or skipped now, the skips in its shards, and the whole
    folder's report once every shard is complete (None before)."""

    done_now: int
    skipped: list[dict[str, str]]
    report: dict[str, Any] | None


def _write_bytes(path: str, data: bytes) -> None:
    with io.atomic_file(path) as temp, open(temp, "wb") as f:
        f.write(data)


def _write_json(path: str, doc: Any) -> None:
    io.write_text(path, json.dumps(doc, indent=2, sort_keys=True))


def decoding(config: Any, comps: components_lib.Components) -> sources.Decoding:
    return sources.Decoding(
        semantic_fps=float(config.video.semantic_fps),
        sync_fps=float(config.video.sync_fps),
        semantic_size=comps.semantic_size,
        sync_size=comps.sync_size,
        sample_rate=int(config.audio.sample_rate),
        channels=int(config.audio.channels),
    )


def _plan(config: Any, comps: components_lib.Components, source: sources.Source) -> dict[str, Any]:
    ids = "\n".join(source.id(i) for i in range(len(source)))
    return {
        "format": extraction.FORMAT,
        "components": comps.paths,
        "source": config.source.to_dict(),
        "audio": config.audio.to_dict(),
        "video": config.video.to_dict(),
        "features": config.features.to_dict(),
        "num_shards": int(config.num_shards),
        "min_seconds": float(config.min_seconds),
        "chunks": config.chunks.to_dict(),
        "clips": len(source),
        "ids_sha1": hashlib.sha1(ids.encode()).hexdigest(),
    }


def _check_workdir(workdir: str, plan: dict[str, Any]) -> None:
    """Creates WORKDIR/progress/plan.json, or checks that a restart uses the same plan."""
    progress = os.path.join(workdir, PROGRESS)
    path = os.path.join(progress, "plan.json")
    stale = [n for n in os.listdir(workdir) if n.startswith("features-") and n.endswith(".array_record")]
    if not os.path.isfile(path):
        if stale:
            raise ExtractError(
                f"workdir {workdir} already holds feature shards from something else; choose an empty folder."
            )
        os.makedirs(progress, exist_ok=True)
        _write_json(path, plan)
        return
    with open(path) as f:
        old = json.load(f)
    for key in sorted(set(old) | set(plan)):
        if old.get(key) != json.loads(json.dumps(plan.get(key))):
            raise ExtractError(
                f"workdir {workdir} was started with different {key!r} ({old.get(key)!r}, now "
                f"{plan.get(key)!r}); resume with the same config or use a new workdir."
            )


def _shard_name(shard: int, count: int) -> str:
    return records.FILE_PATTERN.format(index=shard, count=count)


def _progress_name(shard: int, count: int) -> str:
    return f"shard-{shard:05d}-of-{count:05d}"


def _summary_path(workdir: str, shard: int, count: int) -> str:
    return os.path.join(workdir, PROGRESS, _progress_name(shard, count) + ".json")


def _shard_done(workdir: str, shard: int, count: int) -> bool:
    return os.path.isfile(_summary_path(workdir, shard, count)) and os.path.isfile(
        os.path.join(workdir, _shard_name(shard, count))
    )


def _damaged(path: str, config: Any) -> str | None:
    """Why the progress file `path` (a clip's .rec or .skip.json) cannot be used, or None."""
    try:
        with open(path, "rb") as f:
            data = f.read()
        if path.endswith(".rec"):
            records.validate(records.decode(data), config)
        else:
            json.loads(data)["reason"]  # noqa: B018 -- present and a JSON object
    except (OSError, ValueError, KeyError, TypeError, records.RecordError) as e:
        return f"{type(e).__name__}: {' '.join(str(e).split())[:160]}"
    return None


def _finished(folder: str, index: int, config: Any) -> bool:
    """Whether clip `index` has a usable .rec or .skip.json in `folder`; a damaged one is deleted."""
    for name in (f"{index:08d}.rec", f"{index:08d}.skip.json"):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            why = _damaged(path, config)
            if why is None:
                return True
            logging.warning("progress file %s is damaged (%s); extracting the clip again", path, why)
            os.remove(path)
    return False


def _shard_readable(workdir: str, shard: int, count: int) -> bool:
    """Whether a finished shard's file opens (ArrayRecord reads its index); a damaged one, with its
    summary, is deleted so that the shard is extracted again."""
    path = os.path.join(workdir, _shard_name(shard, count))
    try:
        ArrayRecordReader(path).close()
        return True
    except Exception as e:  # noqa: BLE001 -- whatever the reader says about a damaged file
        why = f"{type(e).__name__}: {' '.join(str(e).split())[:160]}"
    logging.warning("shard %s is damaged (%s); extracting it again", path, why)
    os.remove(path)
    os.remove(_summary_path(workdir, shard, count))
    return False


def _load(config, source, decode, index: int) -> tuple[sources.Media, float] | str:
    """Clip `index` decoded and trimmed (media, seconds), or why it is skipped."""
    clip_id = source.id(index)
    try:
        media, duration = sources.trim(source.load(index, decode), decode)
        if duration < config.min_seconds:
            raise MediaError(
                f"{clip_id}: too short ({duration:.3f} s of "
                f"{'audio' if media.frames8 is None else 'video with audio'}; at least "
                f"{config.min_seconds:g} s is required)."
            )
    except MediaError as e:
        return str(e)
    return media, duration


def _extract_clip(config, comps, source, loaded, index: int, folder: str) -> dict[str, str] | None:
    """Encodes clip `index` (`loaded`: what `_load` gave) into `folder` (a .rec or a .skip.json); returns
    the skip entry, if any."""
    clip_id = source.id(index)
    if isinstance(loaded, str):
        return _skip(folder, index, clip_id, loaded)
    media, duration = loaded
    rec = features.record(comps, media, clip_id, duration, config.chunks, encoders.compute_dtype(config))
    try:
        records.validate(rec, config)
    except records.RecordError as e:  # e.g. a decoder's frame count off by more than one
        return _skip(folder, index, clip_id, str(e))
    _write_bytes(os.path.join(folder, f"{index:08d}.rec"), records.encode(rec))
    return None


def _decoded(config, source, decode, indices: list[int]) -> Iterator[tuple[int, Any]]:
    """(index, `_load`'s result) in order; with config.decode_ahead = k > 0, k threads decode the next k
    clips while the current one is encoded (decoding a 10 s video is ~0.6 CPU s, more than the encoders'
    time on a TPU host: docs/data.md)."""
    ahead = int(config.get("decode_ahead", 0))
    if ahead <= 0:
        yield from ((i, _load(config, source, decode, i)) for i in indices)
        return
    with concurrent.futures.ThreadPoolExecutor(ahead, thread_name_prefix="decode") as pool:
        pending = collections.deque()
        for i in indices:
            pending.append((i, pool.submit(_load, config, source, decode, i)))
            if len(pending) > ahead:
                index, future = pending.popleft()
                yield index, future.result()
        while pending:
            index, future = pending.popleft()
            yield index, future.result()


def _skip(folder: str, index: int, clip_id: str, reason: str) -> dict[str, str]:
    skip = {"source": clip_id, "reason": reason}
    _write_json(os.path.join(folder, f"{index:08d}.skip.json"), skip)
    return skip


def _extract_shard(config, comps, source, decode, workdir: str, shard: int, on_clip: Callable | None) -> int:
    """Finishes shard `shard` (resuming from its clip folder); returns how many clips it handled now."""
    count = int(config.num_shards)
    name = _shard_name(shard, count)
    progress = os.path.join(workdir, PROGRESS)
    folder = os.path.join(progress, _progress_name(shard, count))
    os.makedirs(folder, exist_ok=True)
    clips = range(shard, len(source), count)
    done_now = 0
    todo = [index for index in clips if not _finished(folder, index, config)]
    for index, loaded in _decoded(config, source, decode, todo):
        skip = _extract_clip(config, comps, source, loaded, index, folder)
        done_now += 1
        if on_clip is not None:
            on_clip(source.id(index), skip)
    written, skipped, lengths = [], [], []
    with io.atomic_file(os.path.join(workdir, name)) as temp:
        writer = ArrayRecordWriter(temp, _WRITER_OPTIONS)
        try:
            for index in clips:
                rec_path = os.path.join(folder, f"{index:08d}.rec")
                if os.path.exists(rec_path):
                    with open(rec_path, "rb") as f:
                        data = f.read()
                    writer.write(data)
                    written.append(source.id(index))
                    lengths.append(records.decode(data)["duration"])
                else:
                    with open(os.path.join(folder, f"{index:08d}.skip.json")) as f:
                        skipped.append(json.load(f))
        finally:
            writer.close()
        durations.write(os.path.join(workdir, name), lengths)  # before the shard appears
    summary = {"shard": shard, "clips": len(clips), "written": written, "skipped": skipped}
    _write_json(folder + ".json", summary)
    shutil.rmtree(folder)
    return done_now


def _summaries(workdir: str, count: int) -> list[dict] | None:
    """Every shard's summary, or None while some shard is unfinished."""
    if not all(_shard_done(workdir, shard, count) for shard in range(count)):
        return None
    out = []
    for shard in range(count):
        with open(_summary_path(workdir, shard, count)) as f:
            out.append(json.load(f))
    return out


def extract(
    config: Any,
    workdir: str,
    process_index: int = 0,
    process_count: int = 1,
    on_clip: Callable[[str, dict | None], None] | None = None,
    components: components_lib.Components | None = None,
) -> Result:
    """Runs this process's share of the extraction described by `config` into `workdir`.

    on_clip(clip_id, skip entry or None) is called after each clip extracted now (for progress bars).
    components: already loaded ones (components.load(config)) to reuse across calls; loaded when None.
    Raises a UserError (ComponentError, ExtractError, a bad source setting), one sentence, on bad settings
    before any clip.
    """
    if not 0 <= process_index < process_count:
        raise ExtractError(f"process index {process_index} is not in [0, {process_count}).")
    if int(config.num_shards) < 1:
        raise ExtractError(f"num_shards must be >= 1, got {config.num_shards}.")
    encoders.compute_dtype(config)  # a bad features.encoder_dtype before any work
    comps = components_lib.load(config) if components is None else components
    source = sources.make(config.source.to_dict())
    if len(source) == 0:
        raise ExtractError(f"the source {config.source.to_dict()} holds no clips.")
    decode = decoding(config, comps)
    synthetic = isinstance(source, sources.SyntheticSource) and not source.audio_only
    size = source.size if synthetic else 0
    if size and size != decode.sync_size:
        raise ExtractError(
            f"source.size {size} renders the world at {size} px for a sync encoder of {decode.sync_size} px "
            "frames, while the evaluation renders its held-out clips at the sync encoder's size: the "
            f"generator would train on resized frames and be tested on sharp ones; set source.size to 0 "
            f"(the sync size) or {decode.sync_size}."
        )
    os.makedirs(workdir, exist_ok=True)
    _check_workdir(workdir, _plan(config, comps, source))
    count = int(config.num_shards)
    mine = [s for s in range(count) if s % process_count == process_index]
    if not mine:
        logging.warning("process %d of %d has no shard (num_shards=%d)", process_index, process_count, count)
    done_now = 0
    for shard in mine:
        if not (_shard_done(workdir, shard, count) and _shard_readable(workdir, shard, count)):
            done_now += _extract_shard(config, comps, source, decode, workdir, shard, on_clip)
        else:  # a run killed between the shard's summary and removing its clip folder left the folder
            shutil.rmtree(os.path.join(workdir, PROGRESS, _progress_name(shard, count)), ignore_errors=True)
    skipped = []
    for shard in mine:
        with open(_summary_path(workdir, shard, count)) as f:
            skipped += json.load(f)["skipped"]
    summaries = _summaries(workdir, count)
    report = None
    if summaries is not None:
        order = {source.id(i): i for i in range(len(source))}
        all_skipped = sorted((s for m in summaries for s in m["skipped"]), key=lambda s: order[s["source"]])
        report = {
            "clips": len(source),
            "written": sum(len(m["written"]) for m in summaries),
            "skipped": all_skipped,
        }
        extraction.write(
            workdir,
            {
                "format": extraction.FORMAT,
                "components": comps.paths,
                "audio": config.audio.to_dict(),
                "video": config.video.to_dict(),
                "features": config.features.to_dict(),
                "normalized_latents": True,
                "report": report,
            },
        )
    return Result(done_now=done_now, skipped=skipped, report=report)
