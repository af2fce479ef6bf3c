"""The generate app with `model.generator = "gan"`: trained by the app, evaluated by the same judge as the token
model, exported with the token model's `generate` signature (run without tfmm), a TFLite generator run by LiteRT,
and the settings only the other generator reads refused."""

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from tfmm.apps import generate
from tfmm.apps.generate_stages import JudgeStage, with_training
from tfmm.apps.runner import Runner
from tfmm.config import SamplingConfig
from tfmm.errors import TfmmError
from tfmm.testing import check_in_fresh_process, train_app

PROMPTS = ["a small red circle", "a large blue square left of a green star"]


def run_cli(*argv):
    return generate.main([str(a) for a in argv])


@pytest.fixture(scope="module")
def gan_run(tfds_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("gan_runs")
    config = generate.GenerateConfig()
    config.data.shapes_config, config.data.data_dir, config.data.batch_size = "tiny", str(tfds_dir), 16
    config.model.generator = "gan"
    config.gan.channels, config.gan.text_dim, config.gan.noise_dim = 32, 16, 8
    config.gan_train.epochs, config.judge_train.epochs = 2, 1
    config.train.output_dir = config.judge_train.output_dir = str(out)
    config.export.base_dir, config.export.representative_examples = str(out / "saved_models"), 4
    config.generation.eval_prompts, config.generation.samples_per_prompt = 6, 2
    return train_app(generate.Generate(), config)


@pytest.fixture(scope="module")
def gan_export(gan_run):
    return gan_run.export()


def test_the_gan_trains_in_one_stage_with_its_own_training_settings(gan_run):
    history = (gan_run.path / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 2  # gan_train.epochs, not train.epochs (12)
    assert {"d_loss", "g_loss", "r1", "match_accuracy"} <= set(history[0].split(","))
    assert not (gan_run.path / "tokens").exists() and not (gan_run.path.parent.parent / "generate_vqvae").exists()
    assert type(gan_run.task).__name__ == "TextToImageGAN"


def test_eval_judges_the_gan_as_the_token_model(gan_run, tmp_path):
    judge = gan_run.path.parent.parent / "generate_judge" / "r1"
    Runner(JudgeStage()).train(with_training(gan_run.config, "judge_train"), judge)
    out = tmp_path / "eval.json"
    assert run_cli("eval", "--model", gan_run.path, "--judge", judge, "--output", out) == 0
    metrics = json.loads(out.read_text())
    assert metrics["test_prompts"] == 6 and metrics["examples"] == 6 + metrics["heldout_prompts"]
    assert 0 <= metrics["test_prompt_fidelity"] <= 1 and "test_judge_accuracy_on_real_images" in metrics
    assert not any(key.startswith("reconstruction_") for key in metrics)  # a GAN has no tokenizer to reconstruct with


def test_predict_writes_seeded_images_of_the_latest_run(gan_run, tmp_path):
    out = tmp_path / "samples"  # no --model: the latest run under train.output_dir (a TOML string, quotes and all)
    output_dir = gan_run.config.train.output_dir
    assert run_cli("predict", "--set", f'train.output_dir="{output_dir}"', *PROMPTS, "--output-dir", out) == 0
    files = sorted(out.glob("prompt*_sample*.png"))
    assert len(files) == 4 and (out / "grid.png").is_file()
    first = np.asarray(Image.open(files[0]))
    np.testing.assert_array_equal(first, gan_run.task.generate([PROMPTS[0]] * 2, seed=gan_run.config.sampling.seed)[0])


def test_saved_model_generates_what_the_preset_does_without_tfmm(gan_run, gan_export, tmp_path):
    feed = {"prompt": np.array([*PROMPTS, "zzqx"], dtype=object), "seed": np.int64(3), "temperature": np.float32(0.8),
            "top_k": np.int32(0)}
    served = check_in_fresh_process(
        {"gan": (gan_run.task, "task.generate(['a red circle'], seed=5)", {})}, tmp_path, gan_export, {"generate": feed})
    pngs = np.stack([np.asarray(Image.open(io.BytesIO(base64.b64decode(p.split(":", 1)[1]))))
                     for p in served["generate"]["png"]])
    expected = gan_run.task.generate([*PROMPTS, "zzqx"], seed=3, sampling=SamplingConfig(temperature=0.8))
    assert np.abs(pngs.astype(int) - expected.astype(int)).max() <= 1  # graph vs graph: rounding at most
    assert served["generate"]["known_words"][0] >= 4 and served["generate"]["known_words"][2] == 0
    assert np.asarray(served["generate"]["tokens"]).size == 0


@pytest.mark.parametrize("feed,message", [({"temperature": 0.0}, "temperature must be above 0"),
                                          ({"top_k": 2}, r"top_k must be 0 \(the GAN draws no tokens\)"),
                                          ({"prompt": [" "]}, "a prompt is empty")])
def test_saved_model_refuses_bad_requests(gan_export, feed, message):
    import tensorflow as tf

    model = tf.saved_model.load(str(gan_export))
    args = {"prompt": ["a red circle"], "seed": 3, "temperature": 1.0, "top_k": 0, **feed}
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        model.signatures["serving_default"](prompt=tf.constant(args["prompt"]), seed=tf.constant(args["seed"], tf.int64),
                                            temperature=tf.constant(args["temperature"]), top_k=tf.constant(args["top_k"]))


def test_tflite_generator_draws_what_keras_draws(gan_run, gan_export):
    from ai_edge_litert.interpreter import Interpreter

    task = gan_run.task
    tokens = task.preprocessor.tokenize_numpy(PROMPTS)
    noise = np.random.default_rng(0).normal(size=(2, task.backbone.noise_dim)).astype(np.float32)
    expected = task.backbone({"text_ids": tokens["token_ids"], "padding_mask": tokens["padding_mask"], "noise": noise},
                             training=False)["images"].numpy()
    for quantization, tolerance in (("float32", 1e-4), ("dynamic_int8", 0.1)):
        runner = Interpreter(model_path=str(gan_export / "tflite" / f"gan_generator_{quantization}.tflite")
                             ).get_signature_runner("serving_default")
        for i in range(2):
            got = runner(text_ids=tokens["token_ids"][i:i + 1], padding_mask=tokens["padding_mask"][i:i + 1],
                         noise=noise[i:i + 1])["images"]
            assert np.abs(got - expected[i:i + 1]).mean() < tolerance, quantization
    parity = json.loads((gan_export / "tflite" / "parity.json").read_text())
    assert parity["gan_generator_float32.tflite"]["pixel_agreement"] == 1.0


@pytest.mark.parametrize("argv,message", [
    (["--set", 'model.generator="gan"', "--set", "vqvae.num_codes=64"],
     "vqvae.num_codes is set, but model.generator = 'gan' does not use it"),
    (["--set", 'model.generator="gan"', "--set", "generation.guidance_scale=2.0"],
     "generation.guidance_scale is set, but model.generator = 'gan'"),
    (["--set", "gan.channels=64"], "gan.channels is set, but model.generator = 'tokens' does not use it"),
    (["--set", 'model.generator="gan"', "--set", "gan_train.early_stopping_patience=2"],
     "gan_train.early_stopping_patience: a GAN has no validation loss to stop on"),
])
def test_settings_the_chosen_generator_does_not_read_are_refused(argv, message, tmp_path, capsys):
    assert run_cli("train", "--set", f'train.output_dir="{tmp_path}"', *argv) != 0
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_predict_and_edit_refuse_what_a_gan_cannot_do(gan_run, tmp_path, capsys):
    assert run_cli("predict", "--model", gan_run.path, "a red circle", "--top-k", "3", "--output-dir", tmp_path) != 0
    assert "the GAN draws no tokens" in capsys.readouterr().err
    # a setting only the token model reads is refused for a trained GAN too, not only when training one
    assert run_cli("predict", "--model", gan_run.path, "a red circle", "--guidance-scale", "2", "--output-dir", tmp_path) != 0
    assert "generation.guidance_scale is set, but model.generator = 'gan' does not use it" in capsys.readouterr().err
    image = tmp_path / "scene.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
    assert run_cli("edit", "--model", gan_run.path, image, "--region", "0,0,8,8", "--to", "a red circle") != 0
    assert "cannot edit an image" in capsys.readouterr().err
    with pytest.raises(TfmmError, match="cannot edit"):
        gan_run.task.edit(np.zeros((32, 32, 3), np.uint8), (0, 0, 8, 8), "a red circle")
