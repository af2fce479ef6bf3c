from tfmm.metrics.classification import classification_metrics
from tfmm.metrics.retrieval import recall_at_k, zero_shot_accuracy

__all__ = ["classification_metrics", "recall_at_k", "zero_shot_accuracy"]
