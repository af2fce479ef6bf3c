from tfmm.metrics.retrieval import recall_at_k, zero_shot_accuracy

__all__ = ["recall_at_k", "zero_shot_accuracy"]
