"""Scale-out on Ray Data: the same chunks and the same per-chunk function as the process pool.

The driver plans the chunks (byte ranges of JSONL files, found by one sequential pass that counts
newlines; or record batches for other formats), then Ray Data maps them through a pool of actors, each
holding the eval index (put once in the object store). Workers read their byte ranges themselves, so on a
cluster the training files must sit on storage every node sees at the same path. The chunk results are
collected and ordered by :func:`tulu.decontam.scan.collect`, so the report equals the local one exactly.

``ray`` is an optional dependency (``pip install tulu[dist]``); it is imported only here.
"""

from __future__ import annotations

import logging
import pickle
from typing import Any, Sequence

import numpy as np

from tulu.decontam.ngrams import EvalIndex
from tulu.decontam.scan import CHUNK_BYTES, ScanResult, Settings, TrainSource, collect, plan_chunks, process_chunk

log = logging.getLogger(__name__)


class _ChunkMatcher:
    """Ray Data actor: holds the eval index, matches pickled chunks, returns pickled chunk results."""

    def __init__(self, index: Any, settings: Settings) -> None:
        import ray

        self.index: EvalIndex = ray.get(index) if isinstance(index, ray.ObjectRef) else index
        self.settings = settings

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = [pickle.dumps(process_chunk(self.index, self.settings, pickle.loads(blob)))
               for blob in batch["chunk"]]
        return {"result": np.array(out, dtype=object)}


def init_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Connect to ``address`` (an existing cluster, e.g. ``auto``) or start a local one with ``num_cpus``."""
    import ray

    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)


def scan_ray(index: EvalIndex, sources: Sequence[TrainSource], settings: Settings = Settings(),
             workers: int | None = None, chunk_bytes: int = CHUNK_BYTES, address: str | None = None) -> ScanResult:
    """Like :func:`tulu.decontam.scan.scan`, on Ray Data with ``workers`` actors (default: the cluster's CPUs)."""
    import ray
    import ray.data

    init_ray(address, workers)
    ctx = ray.data.DataContext.get_current()
    from tulu.utils import progress_enabled

    ctx.enable_progress_bars = progress_enabled()
    n_actors = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    chunks = [{"chunk": pickle.dumps(c)} for c in plan_chunks(sources, chunk_bytes)]
    if not chunks:
        return collect(sources, [])
    index_ref = ray.put(index)
    ds = ray.data.from_items(chunks, override_num_blocks=len(chunks))
    ds = ds.map_batches(_ChunkMatcher, fn_constructor_args=(index_ref, settings), batch_size=1,
                        concurrency=min(n_actors, len(chunks)), num_cpus=1)
    results = [pickle.loads(row["result"]) for row in ds.iter_rows()]
    log.info("decontam: ray processed %d chunks with %d actors", len(results), n_actors)
    return collect(sources, results)
