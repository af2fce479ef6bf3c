"""Dynamic batching: concurrent requests to the same signature are merged and split back.

Requests queue per (servable, signature, input names, per-example shapes and dtypes).
A queue is run when it holds `max_batch_size` rows or its oldest request has waited
`batch_timeout_micros`; `num_batch_threads` batches run at once. A request larger
than `max_batch_size` runs on its own. When the queue limit is reached, requests get
RESOURCE_EXHAUSTED.
"""

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import tensorflow as tf

from tfmm.serving.status import ServingError


class _Pending:
    def __init__(self, tensors, rows):
        self.tensors, self.rows, self.future, self.arrived = tensors, rows, Future(), time.monotonic()


def _rows(tensors):
    sizes = {int(t.shape[0]) if t.shape.rank else -1 for t in tensors.values()}
    return sizes.pop() if len(sizes) == 1 and -1 not in sizes else None


class Batcher:
    def __init__(self, params):
        self.params = params
        self._queues = {}
        self._lock = threading.Condition()
        self._pool = ThreadPoolExecutor(params.num_batch_threads, thread_name_prefix="batch")
        self._closed = False
        self._thread = threading.Thread(target=self._schedule, name="batch-scheduler", daemon=True)
        self._thread.start()

    def run(self, servable, signature_name, tensors, run):
        """Runs `run(tensors)` (→ dict of arrays), batched with other requests where possible."""
        rows = _rows(tensors)
        if rows is None or rows >= self.params.max_batch_size:
            return run(tensors)
        key = (id(servable), signature_name, tuple(sorted((n, t.dtype.name, tuple(t.shape[1:])) for n, t in tensors.items())))
        pending = _Pending(tensors, rows)
        with self._lock:
            queue = self._queues.setdefault(key, {"items": [], "run": run})
            queued = sum(len(q["items"]) for q in self._queues.values())
            if queued >= self.params.max_enqueued_batches * self.params.max_batch_size:
                raise ServingError("RESOURCE_EXHAUSTED", "the batching queue is full")
            queue["items"].append(pending)
            self._lock.notify()
        return pending.future.result()

    def _schedule(self):
        timeout = self.params.batch_timeout_micros / 1e6
        while True:
            with self._lock:
                if self._closed:
                    return
                now = time.monotonic()
                ready, wait = [], timeout if timeout > 0 else 0.001
                for key, queue in list(self._queues.items()):
                    items = queue["items"]
                    while items:
                        total, take = 0, []
                        for item in items:
                            if total + item.rows > self.params.max_batch_size:
                                break
                            take.append(item)
                            total += item.rows
                        full = total >= self.params.max_batch_size or len(take) < len(items)
                        expired = now - items[0].arrived >= timeout
                        if not (full or expired):
                            wait = min(wait, timeout - (now - items[0].arrived))
                            break
                        del items[: len(take)]
                        ready.append((queue["run"], take))
                    if not items:
                        del self._queues[key]
                if not ready:
                    self._lock.wait(max(wait, 0.0005))
                    continue
            for run, take in ready:
                self._pool.submit(self._execute, run, take)

    @staticmethod
    def _execute(run, items):
        try:
            if len(items) == 1:
                items[0].future.set_result(run(items[0].tensors))
                return
            merged = {name: tf.concat([i.tensors[name] for i in items], axis=0) for name in items[0].tensors}
            outputs = run(merged)
            total = sum(i.rows for i in items)
            if any(np.ndim(v) == 0 or len(v) != total for v in outputs.values()):
                # Outputs without a batch dimension cannot be split: run the requests one by one.
                for item in items:
                    item.future.set_result(run(item.tensors))
                return
            start = 0
            for item in items:
                item.future.set_result({k: v[start : start + item.rows] for k, v in outputs.items()})
                start += item.rows
        except Exception as error:  # hand the error to every waiting request
            if len(items) > 1 and isinstance(error, ServingError):
                for item in items:  # one bad request must not fail the others
                    try:
                        item.future.set_result(run(item.tensors))
                    except Exception as own:
                        item.future.set_exception(own)
                return
            for item in items:
                if not item.future.done():
                    item.future.set_exception(error)

    def close(self):
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        self._pool.shutdown(wait=False)
