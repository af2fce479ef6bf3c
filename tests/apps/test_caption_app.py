import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tfmm.apps import caption
from tfmm.data import DataChecks
from tfmm.evaluation import caption as caption_evaluation
from tfmm.export.tflite import op_names
from tfmm.layers import decoder_options
from tfmm.testing import assert_picture, check_in_fresh_process, train_app


def run_cli(*argv):
    return caption.main([str(a) for a in argv])


def tiny_caption_config(tfds_dir, output_dir, decoder="gru_attention", epochs=20):
    config = caption.CaptionConfig()
    config.data.shapes_config = "tiny"
    config.data.data_dir = str(tfds_dir)
    config.data.image_size = 32
    config.data.batch_size = 16
    config.model.image_encoder.size = "tiny"
    config.model.decoder = (decoder_options("gru_attention", hidden_dim=32, embedding_dim=32, attention_dim=16)
                            if decoder == "gru_attention" else
                            decoder_options("transformer", hidden_dim=32, num_heads=2, intermediate_dim=64))
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
    return train_app(caption.Caption(), tiny_caption_config(tfds_dir, tmp_path_factory.mktemp("caption_runs")))


@pytest.fixture(scope="module")
def caption_export(caption_run):
    return caption_run.export()


def examples_of(caption_run):
    return caption_run.runner.app.load_split(caption_run.config, "test", DataChecks())


@pytest.fixture(scope="module")
def test_image(caption_run, tmp_path_factory):
    example = next(examples_of(caption_run).as_numpy_iterator())
    path = tmp_path_factory.mktemp("images") / "scene.png"
    Image.fromarray(example["image"]).save(path)
    return path


def test_training_writes_the_run_and_lowers_the_loss(caption_run):
    for name in ("preset/task.json", "config.toml", "history.csv"):
        assert (caption_run.path / name).is_file(), name
    rows = (caption_run.path / "history.csv").read_text().splitlines()
    column = rows[0].split(",").index("loss")
    losses = [float(row.split(",")[column]) for row in rows[1:]]
    assert losses[-1] < 0.6 * losses[0], losses


def test_eval_scores_every_test_image_against_all_references(caption_run, tmp_path):
    out = tmp_path / "eval.json"
    assert run_cli("eval", "--model", caption_run.path, "--beam-width", 2, "--output", out) == 0
    metrics = json.loads(out.read_text())
    assert metrics["images"] == metrics["examples"] == sum(1 for _ in examples_of(caption_run))
    assert metrics["method"] == "beam width 2"
    for key in ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l", "cider_d", "object_correctness"):
        assert 0.0 <= metrics[key] <= (10.0 if key == "cider_d" else 1.0), key
    assert metrics["rouge_l"] > 0.25  # the tiny model writes caption-shaped text ("a small red square")


def test_eval_hands_every_reference_to_the_coco_metrics(caption_run, monkeypatch):
    seen = {}

    def capture(references, hypotheses):
        seen.update(references=references, hypotheses=hypotheses)
        return {}

    monkeypatch.setattr(caption_evaluation, "caption_metrics", capture)
    caption_run.evaluate("test", beam_width=1)
    expected = [[c.decode() for c in e["captions"]] for e in examples_of(caption_run).as_numpy_iterator()]
    assert [seen["references"][k] for k in sorted(seen["references"])] == expected
    assert all(len(refs) == 5 for refs in expected) and len(seen["hypotheses"]) == len(expected)


def test_beam_search_never_scores_below_greedy(caption_run):
    images = np.stack([e["image"] for e in examples_of(caption_run).take(8).as_numpy_iterator()])
    greedy = caption_run.task.caption_details(images, beam_width=1)["captions"]
    beams = caption_run.task.caption_details(images, beam_width=4)["captions"]
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
    pictures = caption_run.runner.app.main_pictures(caption_run.task, caption_run.config, tmp_path)
    assert [p.name for p in pictures] == ["caption.png"]
    assert_picture(pictures[0])


@pytest.mark.parametrize("argv,message", [
    (["--beam-width", 0], "decode.beam_width must be above 0, got 0"),
    (["--beam-width", 5], "decode.beam_width 5 is above decode.max_beam_width 4"),
    (["--max-length", 0], "decode.max_length must be above 0, got 0"),
    (["--max-length", 200], "max_length must be between 1 and 124"),
    (["--sample", "--temperature", 0], "sampling.temperature must be above 0, got 0.0"),
    (["--sample", "--top-k", -1], "sampling.top_k must be at least 0, got -1"),
])
def test_bad_decoding_settings_are_named(caption_run, test_image, capsys, argv, message):
    assert run_cli("predict", test_image, "--model", caption_run.path, *argv) == 2
    assert message in capsys.readouterr().err


def test_an_image_that_does_not_decode_is_named(caption_run, tmp_path, capsys):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    assert run_cli("predict", broken, "--model", caption_run.path) == 2
    assert "broken.png" in capsys.readouterr().err


def test_saved_model_and_preset_caption_alike_in_a_fresh_process(caption_run, caption_export, test_image, tmp_path):
    image = test_image.read_bytes()
    served = check_in_fresh_process(
        {"caption": (caption_run.task, "task.caption(inputs['images'], beam_width=3)", {"images": [image]})},
        tmp_path, caption_export, {
            "caption": {"image_bytes": np.array([image, image], dtype=object)},
            "caption_beam": {"image_bytes": np.array([image], dtype=object), "beam_width": np.int32(2)},
        })
    expected = caption_run.task.caption_details([image], beam_width=3)["captions"][0]  # the configured width (3)
    assert served["caption"]["caption"] == [expected[0][0]] * 2 and np.shape(served["caption"]["top_captions"]) == (2, 3)
    assert served["caption"]["score"][0] == pytest.approx(expected[0][1], abs=1e-4)
    assert served["caption_beam"]["top_captions"][0] == [c for c, _ in caption_run.task.caption_details([image], 2)["captions"][0]]


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
    assert printed == caption_run.task.caption([test_image.read_bytes()], beam_width=3)[0]


def test_transformer_decoder_trains_exports_and_agrees_on_device(tfds_dir, tmp_path):
    config = tiny_caption_config(tfds_dir, tmp_path, decoder="transformer", epochs=1)
    config.train.steps_per_epoch = 3  # parity needs a trained graph, not a good model
    config.export.tflite_quantization = ["float32"]
    exported = train_app(caption.Caption(), config).export()
    parity = json.loads((exported / "tflite" / "parity.json").read_text())
    assert parity["float32"]["greedy_caption_agreement"] == 1.0
    assert "DYNAMIC_UPDATE_SLICE" in op_names(exported / "tflite" / "caption_step_float32.tflite")  # the KV cache
