"""The request path shared by REST and gRPC: check inputs against the signature and the server's limits,
then (batch and) run, within the concurrency limit and the deadline.

Callers resolve the servable first and pass it in, so a request is parsed and run against
the same version even when a new one is loaded meanwhile.
"""

from tfmm.serving.limits import Admission, Limits, check_request
from tfmm.serving.metrics import BATCH_SIZE


class Predictor:
    def __init__(self, manager, batcher=None, limits=None):
        self.manager, self.batcher = manager, batcher
        self.limits = limits or Limits()
        self.admission = Admission(self.limits)

    def predict(self, servable, signature_name, inputs, output_filter=(), deadline_seconds=None):
        """Returns (resolved signature name, outputs dict of arrays). `deadline_seconds`: the client's own
        deadline (gRPC), when shorter than the server's."""
        signature_name, signature_def = servable.signature(signature_name)
        tensors = servable.prepare_inputs(signature_def, inputs, check=lambda arrays: check_request(arrays, self.limits))

        def run(batch):
            rows = next(iter(batch.values())).shape
            BATCH_SIZE.labels(servable.name).observe(int(rows[0]) if rows.rank else 1)
            return servable.run(signature_name, batch, tuple(output_filter))

        if self.batcher is None:
            outputs = self.admission.run(lambda: run(tensors), deadline_seconds)
        else:
            outputs = self.admission.run(lambda: self.batcher.run(servable, signature_name, tensors, run), deadline_seconds)
        return signature_name, outputs

    def close(self):
        self.admission.close()
