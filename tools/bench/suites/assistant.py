"""assistant: the LLaVA-style assistant's default config — exact match per intent (test, held-out phrasings, official
easy-VQA test), training time, tokens per second (Keras, SavedModel `chat`, the TFLite loop), and a side-by-side with
the VQA app on easy-VQA: accuracy, parameters, answers per second."""

import time

import keras
import numpy as np
import tensorflow as tf

from tfmm.apps.assistant import Assistant
from tfmm.apps.vqa import VQA
from tfmm.data import DataChecks, easy_vqa
from tfmm.data.question_groups import directory_groups
from tfmm.evaluation.conversation import evaluate_conversations, reference_prompts
from tools.bench.harness import SMOKE_SHAPES, app_config, scratch, timed

SMOKE = [*(s for s in SMOKE_SHAPES if not s.startswith("train.")), "data.easy_vqa=false", "data.image_size=32",
         "train.epochs=1", "train.steps_per_epoch=2", "align_train.epochs=1", "align_train.steps_per_epoch=2",
         "model.image_encoder.size=tiny", "model.language_model.num_layers=1", "model.language_model.hidden_dim=32",
         "model.language_model.intermediate_dim=64", "model.sequence_length=48", "model.max_reply_length=12",
         "export.representative_examples=4"]
SPLITS = (("test", "test split"), ("phrasing", "held-out phrasings"), ("easy_vqa_test", "official easy-VQA test"))
SMOKE_CONVERSATIONS = 64  # a smoke run scores this many conversations per split (easy-VQA's test has 9,673)


def add_arguments(parser):
    parser.add_argument("--skip-vqa", action="store_true", help="leave out the side-by-side with the VQA app")


def _tokens_per_second(reply, count, repeats=3):
    """Generated tokens (the end token counted) per second of `reply()` → (texts, tokens/s), best of `repeats`."""
    best = None
    for _ in range(repeats):
        started = time.perf_counter()
        texts = reply()
        seconds = time.perf_counter() - started
        best = seconds if best is None else min(best, seconds)
    return texts, count(texts) / best


def _speeds(app, task, runner, config):
    """(Keras batch 1, Keras batch 32, SavedModel batch 1, TFLite float32 loop, TFLite dynamic-int8 loop) tokens/s
    on test turns, and the replies per second of Keras at batch 32."""
    conversations = app.conversations(config, "test", DataChecks())
    prompts = list(reference_prompts(conversations))[:32]
    images = [conversations[p[0]].image.read_bytes() for p in prompts]
    histories, questions = [p[2] for p in prompts], [p[3] for p in prompts]
    tokenizer = task.preprocessor.tokenizer

    def count(texts):  # reply tokens and the end token
        return sum(len(tokenizer([t])[0]) + 1 for t in texts)

    keras_1 = _tokens_per_second(lambda: task.reply(images[:1], histories[:1], questions[:1]), count)[1]
    texts, keras_32 = _tokens_per_second(lambda: task.reply(images, histories, questions), count)
    replies_per_second = len(texts) / (count(texts) / keras_32)
    version = runner.export(task, config)
    chat = tf.saved_model.load(str(version)).signatures["chat"]
    width = 2 * max(len(h) for h in histories[:1]) if histories[0] else 0
    table = tf.constant(np.array([[t for pair in histories[0] for t in pair]], object).reshape(1, width), tf.string)
    saved_1 = _tokens_per_second(lambda: [r.decode() for r in chat(
        image_bytes=tf.constant(images[:1]), history=table, question=tf.constant(questions[:1]))["reply"].numpy()],
        count)[1]
    loops = []
    for quantization in ("float32", "dynamic_int8"):
        folder = version / "tflite"
        if not (folder / f"assistant_step_{quantization}.tflite").is_file():
            loops.append("—")
            continue
        device = _on_device(folder, quantization)
        pixels = task.preprocessor.convert_images(images[:8]).numpy()
        loops.append(_tokens_per_second(lambda: [device.reply(p, h, q) for p, h, q in
                                                 zip(pixels, histories[:8], questions[:8])], count, repeats=1)[1])
    return [keras_1, keras_32, saved_1, *loops], replies_per_second


def _score(app, task, config, split, smoke):
    """The app's evaluation of `split`; a smoke run scores its first `SMOKE_CONVERSATIONS` conversations."""
    if not smoke:
        return app.evaluate(task, config, split)
    return evaluate_conversations(task, app.conversations(config, split, DataChecks())[:SMOKE_CONVERSATIONS])


def _on_device(folder, quantization):
    """The export's own on-device loop (the file a phone app would ship), imported from the export."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("assistant_on_device", folder / "assistant_on_device.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.OnDeviceAssistant(folder, quantization)


def _vqa_row(args, folder):
    """The VQA app's default config on the official easy-VQA split: accuracy, parameters, answers per second."""
    app = VQA()
    overrides = []
    if args.smoke:
        easy_vqa.generate(folder / "vqa_data" / "train", 40, seed=1)
        easy_vqa.generate(folder / "vqa_data" / "test", 10, seed=2)
        overrides = [f'data.source="{folder / "vqa_data"}"', "data.image_size=32", "data.batch_size=8",
                     "train.epochs=1", "model.image_encoder.size=tiny"]
    config, runner = app_config(app, overrides, folder)
    keras.backend.clear_session()
    print("assistant bench: the VQA app for the side-by-side")
    task, seconds = timed(lambda: runner.train(config))
    test = app.evaluate(task, config, "test")
    groups, _ = directory_groups(easy_vqa.package_directory("test"), DataChecks().images)
    groups = groups[:64]
    images = [open(g["image_path"], "rb").read() for g in groups for _ in g["questions"]]
    questions = [q for g in groups for q in g["questions"]]
    task.answer(images, questions)  # traced once before it is timed
    started = time.perf_counter()
    task.answer(images, questions)
    per_second = len(questions) / (time.perf_counter() - started)
    return ["VQA app (classifier over its answers)", test["accuracy"], f"{task.count_params():,}", round(seconds),
            round(per_second, 1)]


def run(args, report):
    with scratch() as folder:
        app = Assistant()
        config, runner = app_config(app, SMOKE if args.smoke else [], folder)
        keras.backend.clear_session()
        task, seconds = timed(lambda: app.train(runner, config))
        scores = {split: _score(app, task, config, split, args.smoke) for split, _ in SPLITS}
        speeds, replies_per_second = _speeds(app, task, runner, config)
        vqa = None if args.skip_vqa else _vqa_row(args, folder)
    intents = sorted({i for s in scores.values() for i in s["intents"]})
    report.table("Assistant (default config): exact match per split and intent", ["split", "exact match", "turns",
                 *intents], [[title, scores[s]["exact_match"], scores[s]["turns"],
                              *(scores[s]["intents"][i]["exact_match"] if i in scores[s]["intents"] else "—"
                                for i in intents)] for s, title in SPLITS],
                 note=f"Trained in {seconds / 60:.1f} min (both stages) with {task.count_params():,} parameters. "
                      "Every assistant turn scored with the references' earlier turns; exact match after lower-casing "
                      "and stripping punctuation. Targets: test ≥ 0.95, held-out phrasings ≥ 0.90, official easy-VQA "
                      "test ≥ 0.99, in ≤ 30 minutes of training.")
    report.table("Assistant decoding speed (tokens per second, greedy, test turns)",
                 ["Keras b1", "Keras b32", "SavedModel chat b1", "TFLite float32 loop b1", "TFLite dynamic int8 loop b1"],
                 [[round(s, 1) if isinstance(s, float) else s for s in speeds]],
                 note="Tokens: the reply's and its end token. The TFLite loop is the export's assistant_on_device.py "
                      "(Python + NumPy + LiteRT), one token per step, the prompt fed one token at a time.")
    rows = [["assistant (free text, one model for every intent)", scores["easy_vqa_test"]["exact_match"],
             f"{task.count_params():,}", round(seconds), round(replies_per_second, 1)]]
    if vqa:
        rows.append(vqa)
    report.table("One general model against a specialist: the official easy-VQA test questions",
                 ["model", "accuracy (exact match)", "parameters", "train (s)", "answers/s (Keras, batch 32/64)"], rows,
                 note="The assistant's training time covers both stages and all its data (shapes conversations and "
                      "easy-VQA); the VQA app trains on easy-VQA alone. Answers per second: the assistant decodes a "
                      "reply token by token (batch 32), the VQA app classifies (64 images' questions at once).")
    report.record(test_exact_match=scores["test"]["exact_match"], phrasing_exact_match=scores["phrasing"]["exact_match"],
                  easy_vqa_exact_match=scores["easy_vqa_test"]["exact_match"], train_minutes=seconds / 60)
