"""The request path shared by REST and gRPC: resolve the servable, check inputs, (batch and) run."""

from tfmm.serving.metrics import BATCH_SIZE


class Predictor:
    def __init__(self, manager, batcher=None):
        self.manager, self.batcher = manager, batcher

    def predict(self, name, version, label, signature_name, inputs, output_filter=()):
        """Returns (servable, resolved signature name, outputs dict of arrays)."""
        servable = self.manager.resolve(name, version, label)
        signature_name, signature_def = servable.signature(signature_name)
        tensors = servable.prepare_inputs(signature_def, inputs)

        def run(batch):
            rows = next(iter(batch.values())).shape
            BATCH_SIZE.labels(name).observe(int(rows[0]) if rows.rank else 1)
            return servable.run(signature_name, batch, tuple(output_filter))

        if self.batcher is None:
            outputs = run(tensors)
        else:
            outputs = self.batcher.run(servable, signature_name, tensors, run)
        return servable, signature_name, outputs
