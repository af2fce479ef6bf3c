import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from tfmm.apps import caption
from tfmm.data import ImageCheck
from tfmm.export.tflite import op_names


def run_cli(*argv):
    return caption.main([str(a) for a in argv])


def tiny_caption_config(tfds_dir, output_dir, decoder="gru_attention", epochs=20):
    config = caption.CaptionConfig()
    config.data.shapes_config = "tiny"
    config.data.data_dir = str(tfds_dir)
    config.data.image_size = 32
    config.data.batch_size = 16
    config.model.image_encoder_size = "tiny"
    config.model.decoder = decoder
    config.model.hidden_dim = 32
    config.model.embedding_dim = 32
    config.model.attention_dim = 16
    config.model.intermediate_dim = 64
    config.model.decoder_heads = 2
    config.model.vocabulary_size = 120
    config.decode.max_beam_width = 4
    config.train.epochs = epochs
    config.train.learning_rate = 5e-3
    config.train.output_dir = str(output_dir)
    config.export.base_dir = str(output_dir / "saved_models")
    config.export.representative_examples = 6
    return config


@pytest.fixture(scope="module")
def caption_run(tfds_dir, tmp_path_factory):
    return caption.train(tiny_caption_config(tfds_dir, tmp_path_factory.mktemp("caption_runs")))


@pytest.fixture(scope="module")
def caption_export(caption_run):
    return caption.export(caption_run)


@pytest.fixture(scope="module")
def test_image(caption_run, tmp_path_factory):
    example = next(caption.examples(caption_run.config, "test", ImageCheck()).as_numpy_iterator())
    path = tmp_path_factory.mktemp("images") / "scene.png"
    Image.fromarray(example["image"]).save(path)
    return path


def test_training_writes_the_run_and_lowers_the_loss(caption_run):
    for name in ("model.keras", "config.toml", "vocabulary.txt", "history.csv"):
        assert (caption_run.path / name).is_file(), name
    rows = (caption_run.path / "history.csv").read_text().splitlines()
    column = rows[0].split(",").index("loss")
    losses = [float(row.split(",")[column]) for row in rows[1:]]
    assert losses[-1] < 0.6 * losses[0], losses


def test_eval_scores_every_test_image_against_all_references(caption_run, tmp_path):
    out = tmp_path / "eval.json"
    assert run_cli("eval", "--model", caption_run.path, "--beam-width", 2, "--output", out) == 0
    metrics = json.loads(out.read_text())
    test_images = sum(1 for _ in caption.examples(caption_run.config, "test", ImageCheck()))
    assert metrics["images"] == test_images and metrics["method"] == "beam width 2"
    for key in ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l", "cider_d", "object_correctness"):
        assert 0.0 <= metrics[key] <= (10.0 if key == "cider_d" else 1.0), key
    assert metrics["rouge_l"] > 0.25  # the tiny model writes caption-shaped text ("a small red square")


def test_eval_hands_every_reference_to_the_coco_metrics(caption_run, monkeypatch):
    seen = {}

    def capture(references, hypotheses):
        seen.update(references=references, hypotheses=hypotheses)
        return {}

    monkeypatch.setattr(caption, "caption_metrics", capture)
    dataset = caption.examples(caption_run.config, "test", ImageCheck())
    caption.evaluate(caption_run, dataset, beam_width=1)
    expected = [[c.decode() for c in e["captions"]] for e in dataset.as_numpy_iterator()]
    assert [seen["references"][k] for k in sorted(seen["references"])] == expected
    assert all(len(refs) == 5 for refs in expected) and len(seen["hypotheses"]) == len(expected)


def test_beam_search_never_scores_below_greedy(caption_run):
    images = np.stack([e["image"] for e in caption.examples(caption_run.config, "test", ImageCheck())
                       .take(8).as_numpy_iterator()]).astype(np.float32) / 255.0
    greedy = caption_run.caption(images, beam_width=1)
    beams = caption_run.caption(images, beam_width=4)
    for one, four in zip(greedy, beams):
        assert len(one) == 1 and len(four) == 4
        assert [s for _, s in four] == sorted((s for _, s in four), reverse=True)
        assert four[0][1] >= one[0][1] - 1e-5


def test_predict_writes_the_caption_and_an_attention_plot(caption_run, test_image, tmp_path):
    out, plot = tmp_path / "caption.json", tmp_path / "attention.png"
    assert run_cli("predict", test_image, "--model", caption_run.path, "--beam-width", 3, "--output", out,
                   "--plot", plot) == 0
    result = json.loads(out.read_text())
    assert len(result["beams"]) == 3 and result["caption"] == result["beams"][0]["caption"]
    assert Image.open(plot).size[0] > 300
    assert run_cli("predict", test_image, "--model", caption_run.path, "--sample", "--temperature", 0.7,
                   "--top-k", 5, "--seed", 3) == 0


@pytest.mark.parametrize("argv,message", [
    (["--beam-width", 0], "beam width must be between 1 and decode.max_beam_width (4), got 0"),
    (["--beam-width", 5], "got 5"),
    (["--max-length", 0], "decode.max_length must be at least 1, got 0"),
    (["--sample", "--temperature", 0], "decode.temperature must be above 0, got 0"),
])
def test_bad_decoding_settings_are_named(caption_run, test_image, capsys, argv, message):
    assert run_cli("predict", test_image, "--model", caption_run.path, *argv) == 2
    assert message in capsys.readouterr().err


def test_an_image_that_does_not_decode_is_named(caption_run, tmp_path, capsys):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    assert run_cli("predict", broken, "--model", caption_run.path) == 2
    assert "broken.png" in capsys.readouterr().err


SERVE = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    assert "tfmm" not in sys.modules
    model = tf.saved_model.load(sys.argv[1])
    image = open(sys.argv[2], "rb").read()
    out = model.signatures["caption"](image_bytes=tf.constant([image, image]))
    beam = model.signatures["caption_beam"](image_bytes=tf.constant([image]), beam_width=tf.constant(2))
    errors = []
    for call in (lambda: model.signatures["caption_beam"](image_bytes=tf.constant([image]), beam_width=tf.constant(0)),
                 lambda: model.signatures["caption"](image_bytes=tf.constant([b"junk"]))):
        try:
            call()
        except tf.errors.InvalidArgumentError as error:
            errors.append(error.message)
    print(json.dumps({"caption": [c.decode() for c in out["caption"].numpy()],
                      "top": out["top_captions"].shape.as_list(), "scores": out["score"].numpy().tolist(),
                      "beam": [c.decode() for c in beam["top_captions"].numpy()[0]], "errors": errors}))
""")


def test_saved_model_captions_image_bytes_without_tfmm(caption_run, caption_export, test_image):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", SERVE, str(caption_export), str(test_image)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    image = caption.load_image(test_image, caption_run)
    expected = caption_run.caption(image[None])[0]  # the configured beam width (3)
    assert result["caption"] == [expected[0][0]] * 2 and result["top"] == [2, 3]
    assert result["scores"][0] == pytest.approx(expected[0][1], abs=1e-4)
    assert result["beam"] == [c for c, _ in caption_run.caption(image[None], beam_width=2)[0]]
    assert "beam_width must be between 1 and 4, got" in result["errors"][0] and len(result["errors"]) == 2


def test_tflite_loop_writes_the_keras_captions(caption_run, caption_export, test_image):
    folder = caption_export / "tflite"
    parity = json.loads((folder / "parity.json").read_text())
    assert parity["float32"]["greedy_caption_agreement"] == 1.0
    assert parity["dynamic_int8"]["greedy_caption_agreement"] >= 0.5
    for name in ("caption_encoder_float32.tflite", "caption_step_float32.tflite"):
        assert not [op for op in op_names(folder / name) if op.startswith("Flex") or op == "CUSTOM"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ""}
    done = subprocess.run([sys.executable, "-I", str(folder / "caption_on_device.py"), str(test_image), "--beam-width", "3"],
                          capture_output=True, text=True, env=env, timeout=300, cwd=str(folder))
    assert done.returncode == 0, done.stderr[-2000:]
    printed = done.stdout.strip().splitlines()[-1].split(": ", 1)[1].rsplit("  (", 1)[0]
    # The script resizes with PIL; the test image is already at the model's size, so nothing is resampled.
    image = caption.load_image(test_image, caption_run)
    assert printed == caption_run.caption(image[None], beam_width=3)[0][0][0]


def test_transformer_decoder_trains_exports_and_agrees_on_device(tfds_dir, tmp_path):
    config = tiny_caption_config(tfds_dir, tmp_path, decoder="transformer", epochs=1)
    config.train.steps_per_epoch = 3  # parity needs a trained graph, not a good model
    config.export.tflite_quantization = ["float32"]
    run = caption.train(config)
    exported = caption.export(run)
    parity = json.loads((exported / "tflite" / "parity.json").read_text())
    assert parity["float32"]["greedy_caption_agreement"] == 1.0
    assert "DYNAMIC_UPDATE_SLICE" in op_names(exported / "tflite" / "caption_step_float32.tflite")  # the KV cache


def test_caption_toml_holds_the_defaults():
    from pathlib import Path

    from tfmm.config import load_config

    assert load_config(caption.CaptionConfig, Path(__file__).parents[2] / "apps" / "caption.toml") == caption.CaptionConfig()
