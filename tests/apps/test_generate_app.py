import io
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from tfmm.apps import generate
from tfmm.data import ImageCheck


def run_cli(*argv):
    return generate.main([str(a) for a in argv])


def tiny_generate_config(tfds_dir, output_dir):
    config = generate.GenerateConfig()
    config.data.shapes_config = "tiny"
    config.data.data_dir = str(tfds_dir)
    config.data.image_size = 32
    config.data.batch_size = 16
    config.vqvae.downsample = 8  # 4×4 tokens
    config.vqvae.hidden_dim = 16
    config.vqvae.num_codes = 32
    config.vqvae.code_dim = 8
    config.vqvae_train.epochs = 3
    config.model.hidden_dim = 32
    config.model.num_layers = 2
    config.model.num_heads = 2
    config.model.intermediate_dim = 32
    config.model.vocabulary_size = 120
    config.sample.samples_per_prompt = 2
    config.sample.edit_candidates = 3
    config.train.epochs = 3
    config.train.learning_rate = 3e-3
    config.train.output_dir = str(output_dir)
    config.export.base_dir = str(output_dir / "saved_models")
    config.export.representative_examples = 4
    return config


@pytest.fixture(scope="module")
def generate_run(tfds_dir, tmp_path_factory):
    config = tiny_generate_config(tfds_dir, tmp_path_factory.mktemp("generate_runs"))
    return generate.train(config, generate.train_vqvae(config))


@pytest.fixture(scope="module")
def judge(generate_run):
    return generate.train_judge(generate_run.config, epochs=1)


@pytest.fixture(scope="module")
def generate_export(generate_run):
    return generate.export(generate_run)


@pytest.fixture(scope="module")
def scene_png(generate_run, tmp_path_factory):
    example = next(generate.examples(generate_run.config, "test", ImageCheck()).as_numpy_iterator())
    path = tmp_path_factory.mktemp("scene") / "scene.png"
    Image.fromarray(example["image"]).save(path)
    return path


def test_both_stages_write_their_runs(generate_run):
    for name in ("model.keras", "vqvae.keras", "vocabulary.txt", "config.toml", "history.csv"):
        assert (generate_run.path / name).is_file(), name
    assert list((generate_run.path / "tokens" / "train").glob("tokens-*.tfrecord"))
    rows = (generate_run.path / "history.csv").read_text().splitlines()
    column = rows[0].split(",").index("loss")
    assert float(rows[-1].split(",")[column]) < float(rows[1].split(",")[column])


def test_sample_writes_every_image_and_a_grid(generate_run, tmp_path, capsys):
    out = tmp_path / "samples"
    assert run_cli("sample", "a small red circle", "zzqx wvvk", "--model", generate_run.path, "--output-dir", out,
                   "--temperature", 0.8, "--top-k", 8) == 0
    files = sorted(p.name for p in out.glob("prompt*_sample*.png"))
    assert files == ["prompt0_sample0.png", "prompt0_sample1.png", "prompt1_sample0.png", "prompt1_sample1.png"]
    assert Image.open(out / "prompt0_sample0.png").size == (32, 32) and (out / "grid.png").is_file()
    assert "'zzqx wvvk' has no word the model knows" in capsys.readouterr().out


def test_sampling_is_seeded(generate_run):
    first = generate_run.sample_tokens(["a large blue star"] * 2, seed=5)
    np.testing.assert_array_equal(first, generate_run.sample_tokens(["a large blue star"] * 2, seed=5))
    assert (first != generate_run.sample_tokens(["a large blue star"] * 2, seed=6)).any()


@pytest.mark.parametrize("argv,message", [
    (["   "], "prompt #0 is empty"),
    (["a red circle", "--temperature", 0], "sample.temperature must be above 0, got 0"),
    (["a red circle", "--top-k", 0], "sample.top_k must be at least 1 (the codebook size or more keeps every code), got 0"),
])
def test_bad_sampling_requests_are_named(generate_run, tmp_path, capsys, argv, message):
    assert run_cli("sample", *argv, "--model", generate_run.path, "--output-dir", tmp_path) == 2
    assert message in capsys.readouterr().err


def test_edit_keeps_every_token_outside_the_region(generate_run, scene_png, tmp_path, monkeypatch, capsys):
    image = generate.load_image(scene_png, 32)
    original = generate_run.encode(image[None])[0]
    kept = {}
    decode = generate_run.decode

    def capture(tokens):
        kept["tokens"] = tokens
        return decode(tokens)

    monkeypatch.setattr(generate_run, "decode", capture)
    edited, info = generate_run.edit(image, (0, 0, 16, 16), "a large green star")  # the top-left 2×2 of 4×4 cells
    assert info == {"cells": 4, "tokens": 16} and edited.shape == (32, 32, 3)
    outside = np.ones((4, 4), bool)
    outside[:2, :2] = False
    np.testing.assert_array_equal(kept["tokens"][0][outside], original[outside])
    assert run_cli("edit", scene_png, "--region", "10,10,40,20", "--prompt", "a red circle", "--model",
                   generate_run.path, "--output", tmp_path / "e.png") == 2
    assert "region (10.0, 10.0, 40.0, 20.0) is not inside the 32×32 image" in capsys.readouterr().err


def test_eval_reports_reconstruction_and_fidelity(generate_run, judge, tmp_path):
    judge_path = sorted((generate_run.path.parent.parent / "generate_judge").glob("*/model.keras"))[-1]
    out = tmp_path / "eval.json"
    assert run_cli("eval", "--model", generate_run.path, "--judge", judge_path, "--prompts", 6, "--output", out) == 0
    metrics = json.loads(out.read_text())
    for key in ("reconstruction_psnr", "reconstruction_codebook_usage", "reconstruction_perplexity",
                "test_prompt_fidelity", "heldout_prompt_fidelity", "test_judge_accuracy_on_real_images"):
        assert key in metrics, key
    assert 0 <= metrics["test_prompt_fidelity"] <= 1 and metrics["test_prompts"] == 6
    images = np.stack([e["image"] for e in generate.examples(generate_run.config, "test", ImageCheck())
                       .as_numpy_iterator()]).astype(np.float32) / 255
    errors = ((generate_run.decode(generate_run.encode(images)) - images) ** 2).mean(axis=(1, 2, 3))
    assert metrics["reconstruction_psnr"] == pytest.approx(float(np.mean(-10 * np.log10(errors))), rel=1e-4)
    assert metrics["reconstruction_images"] == len(images)


def test_judge_labels_follow_left_to_right_objects():
    colours, shapes = ("red", "blue"), ("circle", "star")
    labels = generate.scene_labels("blue star|red circle", colours, shapes)
    assert labels == {"count": 1, "colour0": 2, "shape0": 2, "colour1": 1, "shape1": 1, "colour2": 0, "shape2": 0}


SERVE = textwrap.dedent("""
    import io, json, sys
    import numpy as np
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the WordPiece ops, as TF Serving has them)
    assert "tfmm" not in sys.modules
    model = tf.saved_model.load(sys.argv[1])
    args = dict(seed=tf.constant(3, tf.int64), temperature=tf.constant(1.0), top_k=tf.constant(32))
    first = model.signatures["generate"](prompt=tf.constant(["a small red circle", "zzqx"]), **args)
    again = model.signatures["generate"](prompt=tf.constant(["a small red circle", "zzqx"]), **args)
    image = open(sys.argv[2], "rb").read()
    tokens = model.signatures["encode"](image_bytes=tf.constant([image]))["tokens"]
    decoded = model.signatures["decode"](tokens=tokens)
    errors = []
    for bad in (dict(args, temperature=tf.constant(0.0)), dict(args, top_k=tf.constant(0))):
        try:
            model.signatures["generate"](prompt=tf.constant(["a red circle"]), **bad)
        except tf.errors.InvalidArgumentError as error:
            errors.append(error.message)
    try:
        model.signatures["generate"](prompt=tf.constant([" "]), **args)
    except tf.errors.InvalidArgumentError as error:
        errors.append(error.message)
    print(json.dumps({"png": [p.hex() for p in first["png"].numpy()], "same": bool((first["tokens"].numpy() == again["tokens"].numpy()).all()),
                      "known": first["known_words"].numpy().tolist(), "tokens": tokens.numpy().tolist(),
                      "decoded": decoded["png"].numpy()[0].hex(), "errors": errors}))
""")


def test_saved_model_generates_pngs_without_tfmm(generate_run, generate_export, scene_png):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", SERVE, str(generate_export), str(scene_png)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    images = [Image.open(io.BytesIO(bytes.fromhex(p))) for p in result["png"]]
    assert all(image.size == (32, 32) for image in images) and result["same"]
    assert result["known"][0] >= 4 and result["known"][1] == 0
    image = generate.load_image(scene_png, 32)
    np.testing.assert_array_equal(np.array(result["tokens"])[0], generate_run.encode(image[None])[0])
    decoded = np.asarray(Image.open(io.BytesIO(bytes.fromhex(result["decoded"]))), np.float32) / 255
    np.testing.assert_allclose(decoded, generate_run.decode(np.array(result["tokens"]))[0], atol=1 / 255 + 1e-6)
    assert "temperature must be above 0" in result["errors"][0] and "top_k must be at least 1" in result["errors"][1]
    assert "a prompt is empty" in result["errors"][2]


def test_tflite_vqvae_decoder_matches_keras(generate_export):
    parity = json.loads((generate_export / "tflite" / "parity.json").read_text())
    assert parity["vqvae_decoder_float32.tflite"]["max_pixel_difference"] < 1e-4
    assert parity["vqvae_decoder_dynamic_int8.tflite"]["mean_pixel_difference"] < 0.05


def test_generate_toml_holds_the_defaults():
    from pathlib import Path

    from tfmm.config import load_config

    assert load_config(generate.GenerateConfig, Path(__file__).parents[2] / "apps" / "generate.toml") == \
        generate.GenerateConfig()


def test_eval_scores_samples_with_a_trained_retrieval_model(generate_run, trained_run):
    metrics = generate.evaluate(generate_run, retrieval=trained_run, prompts=4)
    texts, _, real = generate.prompts_of(generate_run.config, "test", 4)
    expected = np.mean(np.sum(trained_run.embed_images(real) * trained_run.embed_texts(texts), axis=-1))
    assert metrics["test_retrieval_similarity_real_images"] == pytest.approx(float(expected), abs=1e-5)
    assert -1 <= metrics["test_retrieval_similarity_samples"] <= 1 and "test_prompt_fidelity" not in metrics
