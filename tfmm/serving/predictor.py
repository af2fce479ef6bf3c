"""The request path shared by REST and gRPC: check inputs against the signature, (batch and) run.

Callers resolve the servable first and pass it in, so a request is parsed and run against
the same version even when a new one is loaded meanwhile.
"""

from tfmm.serving.metrics import BATCH_SIZE


class Predictor:
    def __init__(self, manager, batcher=None):
        self.manager, self.batcher = manager, batcher

    def predict(self, servable, signature_name, inputs, output_filter=()):
        """Returns (resolved signature name, outputs dict of arrays)."""
        signature_name, signature_def = servable.signature(signature_name)
        tensors = servable.prepare_inputs(signature_def, inputs)

        def run(batch):
            rows = next(iter(batch.values())).shape
            BATCH_SIZE.labels(servable.name).observe(int(rows[0]) if rows.rank else 1)
            return servable.run(signature_name, batch, tuple(output_filter))

        if self.batcher is None:
            outputs = run(tensors)
        else:
            outputs = self.batcher.run(servable, signature_name, tensors, run)
        return signature_name, outputs
