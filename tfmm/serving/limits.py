"""What one request may ask of the server, checked before any model runs: rows, declared image pixels (read from
the header, so a few-KB PNG that declares 30000×30000 pixels is refused undecoded), a concurrency limit and a
deadline. A refused request is a TF Serving-style error; the server keeps serving the others."""

import dataclasses
import threading
from concurrent import futures

from PIL import Image

from tfmm.data.checks import declared_pixels
from tfmm.serving.status import ServingError, invalid


@dataclasses.dataclass
class Limits:
    max_rows: int = 1024  # rows (first dimension) of any input
    max_image_pixels: int = 25_000_000  # width × height an encoded image may declare
    timeout_seconds: float = 60.0  # a request not answered by then gets DEADLINE_EXCEEDED
    max_concurrent: int = 32  # requests running at once; more are refused with RESOURCE_EXHAUSTED

    def __post_init__(self):
        for name in ("max_rows", "max_image_pixels", "max_concurrent"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be above 0, got {self.timeout_seconds}")


def check_request(arrays, limits):
    """Raises INVALID_ARGUMENT for an input (NumPy arrays, before they become tensors) over `limits.max_rows` rows
    or an image over `limits.max_image_pixels`."""
    for name, array in arrays.items():
        if array.ndim and array.shape[0] > limits.max_rows:
            raise invalid(f"input {name} has {array.shape[0]} rows; this server takes at most {limits.max_rows} per "
                          "request (--max_rows_per_request)")
        if array.dtype != object:
            continue
        for index, value in enumerate(array.reshape(-1)):
            pixels = declared_pixels(value)
            if pixels is not None and pixels > limits.max_image_pixels:
                declared = f"more than {2 * Image.MAX_IMAGE_PIXELS:,}" if pixels == float("inf") else f"{pixels:,}"
                raise invalid(f"image #{index} of input {name} declares {declared} pixels; this server takes at most "
                              f"{limits.max_image_pixels:,} (--max_image_pixels)")


class Admission:
    """At most `max_concurrent` computations at once, each given up on after its deadline (the computation
    itself cannot be interrupted: it keeps its slot until it ends, so a flood of slow requests is refused)."""

    def __init__(self, limits):
        self.limits = limits
        self._slots = threading.BoundedSemaphore(limits.max_concurrent)
        self._pool = futures.ThreadPoolExecutor(max_workers=limits.max_concurrent, thread_name_prefix="predict")

    def run(self, compute, deadline_seconds=None):
        if not self._slots.acquire(blocking=False):
            raise ServingError("RESOURCE_EXHAUSTED", f"the server is busy: {self.limits.max_concurrent} requests are "
                                                     "running (--max_concurrent_requests); retry later")
        try:
            future = self._pool.submit(compute)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        timeout = min(self.limits.timeout_seconds, deadline_seconds or float("inf"))
        try:
            return future.result(timeout=timeout)
        except futures.TimeoutError:
            raise ServingError("DEADLINE_EXCEEDED", f"the model did not answer within {timeout:.3g} s") from None

    def close(self):
        self._pool.shutdown(wait=False, cancel_futures=True)
