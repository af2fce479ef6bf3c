"""The checks every task passes (`tfmm.testing`): `.keras` round trip with its class, `fit` on a `tf.data`
pipeline of raw batches, and raw-input prediction from its preset in a fresh process (one process for all
tasks). The export of each task is checked by its app's tests, on a trained model."""

import numpy as np
import pytest
import tensorflow as tf

from tfmm.testing import check_fit, check_in_fresh_process, check_keras_round_trip, raw_dataset, tiny_tasks

TEXTS = np.array(["a small red circle", "is there a green square", "a white shape", "no purple triangle"])
HEADS = ("count", *(f"{kind}{slot}" for slot in range(3) for kind in ("colour", "shape")))


def _cases():
    rng = np.random.default_rng(0)
    images, clips = tiny_tasks.images(4), tiny_tasks.images(12).reshape(4, 3, 20, 20, 3)
    questions = np.array([[t, "", ""] for t in TEXTS])
    answers, real = np.array([["red", "", ""], ["no", "", ""], ["yes", "", ""], ["circle", "", ""]]), np.eye(4, 3)[:, [0, 0, 0]]
    more = tiny_tasks.images(2, seed=7)
    return {  # name: (build, raw (x, y, sample_weight) for fit, predict source, its raw inputs)
        "retriever": (tiny_tasks.retriever, ({"images": images, "text": TEXTS},),
                      "dict(labels=task.zero_shot(inputs['images'], ['red circle', 'green square'])['labels'], "
                      "texts=task.embed_texts(['a red circle']).round(4))", {"images": more}),
        "answerer": (lambda: tiny_tasks.answerer("co_attention"), ({"images": images, "questions": questions}, answers, real),
                     "task.answer(inputs['images'], ['what color is the shape', 'is there a red circle'])", {"images": more}),
        "clip_answerer": (lambda: tiny_tasks.answerer("cross_attention", frames=3),
                          ({"images": clips, "questions": questions}, answers, real),
                          "task.answer(inputs['clips'], ['what color is the shape', 'is there a red circle'])",
                          {"clips": clips[:2]}),
        "classifier": (lambda: tiny_tasks.classifier("late"), ({"images": images, "text": TEXTS},
                       {"main": np.array(["a", "b", "c", "zz"]), "aux": np.array(["x", "y", "x", "y"])}),
                       "task.classify(inputs['images'], ['a red circle', 'a blue star'])", {"images": more}),
        "captioner": (tiny_tasks.captioner, ({"images": images, "captions": TEXTS},),
                      "task.caption(inputs['images'], beam_width=2)", {"images": more}),
        "vqvae": (tiny_tasks.vqvae, ({"images": images},), "task.encode(inputs['images'])", {"images": more}),
        "generator": (tiny_tasks.generator, ({"prompts": TEXTS, "image_ids": rng.integers(0, 8, (4, 16)).astype("int32")},),
                      "task.generate(['a red circle', 'a green square'], seed=3)", {}),
        "gan": (tiny_tasks.gan, ({"prompts": TEXTS, "images": images},),
                "task.generate(['a red circle', 'a green square'], seed=3)", {}),
        "segmenter": (lambda: tiny_tasks.segmenter("cross_attention"),
                      ({"images": images, "text": TEXTS}, (rng.random((4, 20, 20)) > 0.6).astype(np.uint8)),
                      "task.segment_details(inputs['images'], ['a red circle', 'no green square'])", {"images": more}),
        "assistant": (tiny_tasks.assistant, ({"images": images, "questions": questions, "answers": answers},),
                      "task.reply(inputs['images'], [[], [('what colour', 'red')]], ['what shape', 'and its size'])",
                      {"images": more}),
        "judge": (tiny_tasks.judge, ({"images": images}, {head: np.zeros(4, np.int32) for head in HEADS}),
                  "task.read(inputs['images'])", {"images": more}),
    }


CASES = _cases()


@pytest.fixture(scope="module")
def tasks():
    return {name: build() for name, (build, *_) in CASES.items()}


@pytest.mark.parametrize("name", CASES)
def test_keras_round_trip_and_fit_on_raw_batches(tasks, name):
    task, raw = tasks[name], CASES[name][1]
    preprocessed = task.preprocessor(*raw)
    inputs = preprocessed[0] if isinstance(preprocessed, tuple) else preprocessed
    if name == "gan":  # the generator takes noise where training takes images
        inputs = {"text_ids": inputs["text_ids"], "padding_mask": inputs["padding_mask"],
                  "noise": tf.constant(np.random.default_rng(0).normal(size=(len(TEXTS), 4)), tf.float32)}
    check_keras_round_trip(task, inputs)
    check_fit(task, raw_dataset(*raw))


def test_presets_give_the_same_predictions_in_a_fresh_process(tasks, tmp_path):
    check_in_fresh_process({name: (tasks[name], predict, inputs) for name, (_, _, predict, inputs) in CASES.items()},
                           tmp_path)
