"""Evaluators per task, over whole splits of raw examples, calling the tasks' own raw-input methods
(so they measure what a user of the preset gets): retrieval Recall@K and zero-shot, VQA accuracy per
question type, caption metrics with the object check, classification with missing modalities,
reconstruction and prompt fidelity for generation."""

from tfmm.evaluation.caption import caption_metrics, evaluate_captions, object_correctness
from tfmm.evaluation.classification import classification_metrics, evaluate_classifier, summarize_classification
from tfmm.evaluation.generation import (
    evaluate_generator,
    judge_scenes,
    reconstruction_metrics,
    sample_diversity,
    scene_labels,
)
from tfmm.evaluation.retrieval import evaluate_retrieval, evaluate_zero_shot, recall_at_k, zero_shot_accuracy
from tfmm.evaluation.vqa import evaluate_vqa

__all__ = [
    "caption_metrics", "classification_metrics", "evaluate_captions", "evaluate_classifier", "evaluate_generator",
    "evaluate_retrieval", "evaluate_vqa", "evaluate_zero_shot", "judge_scenes", "object_correctness",
    "recall_at_k", "reconstruction_metrics", "sample_diversity", "scene_labels", "summarize_classification", "zero_shot_accuracy",
]
