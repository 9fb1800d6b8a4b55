"""Stream the training side through worker processes against the eval index.

A training file is cut into *chunks*: byte ranges of a plain JSONL file (the workers read them
themselves, so no data crosses a pipe), or batches of records for the other formats (gzipped JSONL,
JSON, Parquet, HF ``datasets`` folders, read by :func:`tulu.data.formats.read_records`). Each chunk gives a
:class:`ChunkResult`; :func:`collect` turns the ordered chunk results into a :class:`ScanResult`. The
Ray Data path (:mod:`tulu.decontam.distributed`) processes the very same chunks with the very same
function, so both paths give identical results.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from tulu.data.formats import DataError, read_records, to_canonical
from tulu.decontam.ngrams import EvalIndex, match_instances

ROLES = ("system", "user", "assistant")
CHUNK_BYTES = 2 << 20  # 2 MiB of JSONL per chunk (~1-2k chat records)
CHUNK_RECORDS = 2000


@dataclass(frozen=True)
class TrainSource:
    name: str
    path: Path


@dataclass(frozen=True)
class Chunk:
    source: int  # index into the list of sources
    seq: int  # chunk number within the source
    path: str
    start: int = 0  # byte range [start, end) of a plain JSONL file; lines belong to the chunk they start in
    end: int = 0
    first_line: int = 1  # line number of the chunk's first line
    records: tuple = ()  # ((loc, raw record), ...) for formats read by the driver


@dataclass
class ChunkResult:
    source: int
    seq: int
    n_records: int
    # (record index within the chunk, location "file:line", eval instance, covered tokens)
    matches: list[tuple[int, str, int, int]] = field(default_factory=list)
    texts: dict[int, list[str]] = field(default_factory=dict)  # segments of the matched records


@dataclass(frozen=True)
class Settings:
    roles: tuple[str, ...] = ("user",)
    threshold: float = 0.5


@dataclass
class ScanResult:
    sources: list[TrainSource]
    n_records: list[int]  # per source
    # (source, record index, location, eval instance, covered tokens), sorted
    matches: list[tuple[int, int, str, int, int]]
    texts: dict[tuple[int, int], list[str]] = field(default_factory=dict)  # (source, record) -> segments

    def removed(self, source: int) -> set[int]:
        """Record indices of ``source`` that contaminate at least one eval instance."""
        return {rec for s, rec, _, _, _ in self.matches if s == source}


# ------------------------------------------------------------------------------------------- records
def record_segments(rec: Any, loc: str, roles: Sequence[str]) -> list[str]:
    """Texts of the turns with the selected roles (any record shape :mod:`tulu.data.formats` accepts)."""
    if not isinstance(rec, dict):
        raise DataError(f"{loc}: expected a JSON object, got {type(rec).__name__}")
    if not isinstance(rec.get("messages"), list):
        kind = "preference" if "chosen" in rec and "rejected" in rec else "rl"
        rec = to_canonical(rec, loc, kind)  # lenient: prompt-only shapes are accepted too
    segs: list[str] = []
    for key in ("messages", "chosen", "rejected"):
        turns = rec.get(key)
        if turns is None:
            continue
        if not isinstance(turns, list):
            raise DataError(f"{loc}: {key}: expected a list of messages")
        for i, m in enumerate(turns):
            if not isinstance(m, dict):
                raise DataError(f"{loc}: {key}[{i}]: expected an object with role and content")
            role, content = m.get("role"), m.get("content")
            if role not in ROLES:
                raise DataError(f"{loc}: {key}[{i}].role: unknown role {role!r}")
            if not isinstance(content, str):
                raise DataError(f"{loc}: {key}[{i}].content: "
                                f"{'missing' if content is None else 'expected a string'}")
            if role in roles:
                segs.append(content)
    return segs


def iter_range(path: str, start: int, end: int, first_line: int) -> Iterator[tuple[str, Any]]:
    """``(loc, record)`` for every non-blank line that starts in the byte range ``[start, end)``."""
    with open(path, "rb") as fh:
        fh.seek(start)
        lineno = first_line
        pos = start
        while pos < end:
            line = fh.readline()
            if not line:
                break
            pos += len(line)
            if line.strip():
                loc = f"{path}:{lineno}"
                try:
                    yield loc, json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    raise DataError(f"{loc}: invalid JSON ({exc})") from None
            lineno += 1


def plan_chunks(sources: Sequence[TrainSource], chunk_bytes: int = CHUNK_BYTES,
                chunk_records: int = CHUNK_RECORDS) -> Iterator[Chunk]:
    """Chunks of every source, in order. Plain JSONL is cut at newlines (counted, for exact line numbers)."""
    for si, src in enumerate(sources):
        path = Path(src.path)
        if not path.exists():
            raise DataError(f"{path}: no such file or folder")
        if path.is_file() and path.suffix in (".jsonl", ".ndjson"):
            yield from _plan_jsonl(si, str(path), chunk_bytes)
            continue
        batch: list[tuple[str, dict]] = []
        seq = 0
        for loc, rec in read_records(path):
            batch.append((loc, rec))
            if len(batch) == chunk_records:
                yield Chunk(si, seq, str(path), records=tuple(batch))
                seq, batch = seq + 1, []
        if batch:
            yield Chunk(si, seq, str(path), records=tuple(batch))


def _plan_jsonl(si: int, path: str, chunk_bytes: int) -> Iterator[Chunk]:
    size = os.path.getsize(path)
    seq, start, line = 0, 0, 1
    with open(path, "rb") as fh:
        while start < size:
            fh.seek(start)
            block = fh.read(chunk_bytes)
            cut = block.rfind(b"\n") + 1 if len(block) == chunk_bytes else len(block)
            if cut == 0:  # one line longer than a chunk: extend to its end
                rest = fh.readline()
                block, cut = block + rest, len(block) + len(rest)
            yield Chunk(si, seq, path, start=start, end=start + cut, first_line=line)
            line += block.count(b"\n", 0, cut)
            seq, start = seq + 1, start + cut


# ------------------------------------------------------------------------------------------- workers
def process_chunk(index: EvalIndex, settings: Settings, chunk: Chunk) -> ChunkResult:
    """Match every record of one chunk (the unit of work of both the process pool and Ray Data)."""
    items: Iterable[tuple[str, Any]] = chunk.records if chunk.records else \
        iter_range(chunk.path, chunk.start, chunk.end, chunk.first_line)
    locs: list[str] = []
    segments: list[list[str]] = []
    for loc, rec in items:
        locs.append(loc)
        segments.append(record_segments(rec, loc, settings.roles))
    res = ChunkResult(chunk.source, chunk.seq, len(locs))
    for i, e, cov in match_instances(index, segments, settings.threshold):
        res.matches.append((i, locs[i], e, cov))
        res.texts[i] = segments[i]
    return res


_WORKER: dict[str, Any] = {}


def _init_worker(index: EvalIndex, settings: Settings) -> None:
    _WORKER["index"], _WORKER["settings"] = index, settings


def _work(chunk: Chunk) -> ChunkResult:
    return process_chunk(_WORKER["index"], _WORKER["settings"], chunk)


def collect(sources: Sequence[TrainSource], results: Iterable[ChunkResult]) -> ScanResult:
    """Order chunk results (any arrival order) and give every match its record index within its source."""
    ordered = sorted(results, key=lambda r: (r.source, r.seq))
    n_records = [0] * len(sources)
    matches: list[tuple[int, int, str, int, int]] = []
    texts: dict[tuple[int, int], list[str]] = {}
    for r in ordered:
        base = n_records[r.source]
        matches += [(r.source, base + i, loc, e, cov) for i, loc, e, cov in r.matches]
        texts.update({(r.source, base + i): segs for i, segs in r.texts.items()})
        n_records[r.source] += r.n_records
    matches.sort()
    return ScanResult(list(sources), n_records, matches, texts)


def scan(index: EvalIndex, sources: Sequence[TrainSource], settings: Settings = Settings(),
         workers: int | None = None, chunk_bytes: int = CHUNK_BYTES, progress_desc: str = "decontam") -> ScanResult:
    """Match every training instance of ``sources`` against ``index`` with ``workers`` processes."""
    from tulu.utils import progress

    workers = workers or os.cpu_count() or 1
    chunks = plan_chunks(sources, chunk_bytes)
    results: list[ChunkResult] = []
    bar = progress(desc=progress_desc, unit="rec")
    if workers == 1:
        for c in chunks:
            results.append(process_chunk(index, settings, c))
            bar.update(results[-1].n_records)
    else:
        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
        with ctx.Pool(workers, initializer=_init_worker, initargs=(index, settings)) as pool:
            for r in pool.imap(_work, chunks):
                results.append(r)
                bar.update(r.n_records)
    bar.close()
    return collect(sources, results)
