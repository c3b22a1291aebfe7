"""Micro-batching: concurrent requests' texts share one model call in a worker thread."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ranking.base import RankerUnavailable

# Texts per model call; requests beyond this wait for the next call.
MAX_BATCH_TEXTS = 128


@dataclass(slots=True)
class _Job:
    texts: Sequence[str]
    future: asyncio.Future[np.ndarray]


class MicroBatcher:
    """Queues `embed` calls and serves everything queued with one `encode` call at a time.

    The model runs in one worker thread, so the event loop never blocks on inference. While
    a call runs, new requests queue up; the next call takes all of them (up to
    `max_batch_texts`), so under load one model call serves several requests in flight.
    """

    def __init__(
        self,
        encode: Callable[[Sequence[str]], np.ndarray],
        max_batch_texts: int = MAX_BATCH_TEXTS,
    ) -> None:
        self.encode = encode
        self.max_batch_texts = max_batch_texts
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bitgate-embed")
        self.calls = 0  # model calls made
        self.requests = 0  # embed() calls served
        self._queue: asyncio.Queue[_Job] | None = None
        self._worker: asyncio.Task[None] | None = None

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit embeddings of `texts`, one row each, computed off the event loop."""
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._worker = loop.create_task(self._run())
        assert self._queue is not None
        future: asyncio.Future[np.ndarray] = loop.create_future()
        await self._queue.put(_Job(texts, future))
        return await future

    async def _run(self) -> None:
        """Take every queued job, run them as one batch, hand each its rows; forever."""
        assert self._queue is not None
        queue = self._queue
        loop = asyncio.get_running_loop()
        jobs: list[_Job] = []
        try:
            while True:
                jobs = [await queue.get()]
                await self._serve(queue, jobs, loop)
        finally:
            # Stopped: nobody will answer the jobs in hand or still queued, so say so now.
            while not queue.empty():
                jobs.append(queue.get_nowait())
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(RankerUnavailable("embedding", "stopped"))

    async def _serve(
        self, queue: asyncio.Queue[_Job], jobs: list[_Job], loop: asyncio.AbstractEventLoop
    ) -> None:
        """Run `jobs` and everything queued behind them (up to the cap) as one model call.

        `jobs` grows in place, so a stop while the model runs still reaches every job taken.
        """
        size = len(jobs[0].texts)
        while not queue.empty() and size < self.max_batch_texts:
            job = queue.get_nowait()
            jobs.append(job)
            size += len(job.texts)
        live = [j for j in jobs if not j.future.cancelled()]
        if not live:
            return
        texts = [t for j in live for t in j.texts]
        try:
            vectors = await loop.run_in_executor(self.executor, self.encode, texts)
        except Exception as exc:  # the model failed: every waiting request hears of it
            for job in live:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        self.calls += 1
        self.requests += len(live)
        start = 0
        for job in live:
            end = start + len(job.texts)
            if not job.future.done():
                job.future.set_result(vectors[start:end])
            start = end

    async def stop_worker(self) -> None:
        """Stop the worker task; a later `embed` starts a new one on its own loop."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None

    async def aclose(self) -> None:
        """Stop the worker task and the thread."""
        await self.stop_worker()
        self.executor.shutdown(wait=False, cancel_futures=True)
