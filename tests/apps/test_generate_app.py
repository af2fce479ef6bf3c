import io
import json

import numpy as np
import pytest
from PIL import Image

from tfmm.apps import generate
from tfmm.apps.generate_stages import JudgeStage, VQVAEStage, with_training
from tfmm.apps.runner import Runner
from tfmm.data import DataChecks
from tfmm.evaluation import evaluate_generator
from tfmm.testing import assert_picture, check_in_fresh_process, record_calls, train_app


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
    config.model.hidden_dim = 32
    config.model.num_layers = 2
    config.model.num_heads = 2
    config.model.intermediate_dim = 32
    config.model.vocabulary_size = 120
    config.generation.samples_per_prompt = 2
    config.generation.edit_candidates = 3
    config.generation.eval_prompts = 6
    for section in (config.train, config.vqvae_train, config.judge_train):
        section.epochs = 3 if section is not config.judge_train else 1
        section.output_dir = str(output_dir)
    config.train.learning_rate = 3e-3
    config.export.base_dir = str(output_dir / "saved_models")
    config.export.representative_examples = 4
    return config


@pytest.fixture(scope="module")
def generate_run(tfds_dir, tmp_path_factory):
    config = tiny_generate_config(tfds_dir, tmp_path_factory.mktemp("generate_runs"))
    Runner(VQVAEStage()).train(with_training(config, "vqvae_train"))
    return train_app(generate.Generate(), config)


@pytest.fixture(scope="module")
def judge_path(generate_run):
    config = generate_run.config
    path = generate_run.path.parent.parent / "generate_judge" / "r1"
    Runner(JudgeStage()).train(with_training(config, "judge_train"), path)
    return path


@pytest.fixture(scope="module")
def generate_export(generate_run):
    return generate_run.export()


@pytest.fixture(scope="module")
def scene_png(generate_run, tmp_path_factory):
    example = next(generate.load_caption_examples(generate_run.config.data, "test", DataChecks().images).as_numpy_iterator())
    path = tmp_path_factory.mktemp("scene") / "scene.png"
    Image.fromarray(example["image"]).save(path)
    return path


def test_both_stages_write_their_runs_and_presets(generate_run):
    for name in ("preset/task.json", "preset/task.weights.h5", "config.toml", "history.csv"):
        assert (generate_run.path / name).is_file(), name
    assert list((generate_run.path / "tokens" / "train").glob("tokens-*.tfrecord"))
    assert list((generate_run.path.parent.parent / "generate_vqvae").glob("*/preset/task.json"))
    rows = (generate_run.path / "history.csv").read_text().splitlines()
    column = rows[0].split(",").index("loss")
    assert float(rows[-1].split(",")[column]) < float(rows[1].split(",")[column])


def test_predict_writes_every_image_and_a_grid(generate_run, tmp_path, capsys):
    out = tmp_path / "samples"
    assert run_cli("predict", "a small red circle", "zzqx wvvk", "--model", generate_run.path, "--output-dir", out,
                   "--temperature", "0.8", "--top-k", "8") == 0
    files = sorted(p.name for p in out.glob("prompt*_sample*.png"))
    assert files == ["prompt0_sample0.png", "prompt0_sample1.png", "prompt1_sample0.png", "prompt1_sample1.png"]
    assert Image.open(out / "prompt0_sample0.png").size == (32, 32) and (out / "grid.png").is_file()
    assert "'zzqx wvvk' has no word the model knows" in capsys.readouterr().out
    assert_picture(out / "grid.png")
    pictures = generate_run.runner.app.main_pictures(generate_run.task, generate_run.config, tmp_path)
    assert [p.name for p in pictures] == ["samples.png"]
    assert_picture(pictures[0])


def test_sampling_is_seeded(generate_run):
    task = generate_run.task
    first = task.sample_tokens(["a large blue star"] * 2, seed=5)
    np.testing.assert_array_equal(first, task.sample_tokens(["a large blue star"] * 2, seed=5))
    assert (first != task.sample_tokens(["a large blue star"] * 2, seed=6)).any()


@pytest.mark.parametrize("argv,message", [
    (["   "], "prompt #0 is empty"),
    (["a red circle", "--set", "sampling.temperature=0"], "sampling.temperature must be above 0, got 0.0"),
    (["a red circle", "--set", "sampling.top_k=-1"], "sampling.top_k must be at least 0, got -1"),
    (["a red circle", "--top-p", "1.5"], "sampling.top_p must be"),  # the shortcut flags go through the same checks
    (["a red circle", "--guidance-scale", "-1"], "generation.guidance_scale must be"),
])
def test_bad_sampling_requests_are_named(generate_run, tmp_path, capsys, argv, message):
    assert run_cli("predict", *argv, "--model", generate_run.path, "--output-dir", tmp_path) == 2
    assert message in capsys.readouterr().err


def test_edit_keeps_every_token_outside_the_region(generate_run, scene_png, tmp_path, monkeypatch, capsys):
    task = generate_run.task
    image = scene_png.read_bytes()
    original = task.encode([image])[0]
    decoded = record_calls(monkeypatch, task, "decode")
    edited, info = task.edit(image, (0, 0, 16, 16), "a large green star", candidates=3)  # the top-left 2×2 of 4×4 cells
    assert (info["cells"], info["tokens"]) == (4, 16) and edited.shape == (32, 32, 3)
    outside = np.ones((4, 4), bool)
    outside[:2, :2] = False
    np.testing.assert_array_equal(decoded[0][0][outside], original[outside])
    assert run_cli("edit", scene_png, "--region", "10,10,40,20", "--prompt", "a red circle", "--model",
                   generate_run.path, "--output", tmp_path / "e.png") == 2
    assert "region (10.0, 10.0, 40.0, 20.0) is not inside the 32×32 image" in capsys.readouterr().err


def test_eval_reports_reconstruction_and_fidelity(generate_run, judge_path, tmp_path):
    out = tmp_path / "eval.json"
    assert run_cli("eval", "--model", generate_run.path, "--judge", judge_path, "--output", out) == 0
    metrics = json.loads(out.read_text())
    for key in ("reconstruction_psnr", "reconstruction_codebook_usage", "reconstruction_perplexity",
                "test_prompt_fidelity", "heldout_prompt_fidelity", "test_judge_accuracy_on_real_images",
                "test_judge_accuracy_on_reconstructions"):
        assert key in metrics, key
    assert metrics["test_prompts"] == 6 and metrics["examples"] == 6 + metrics["heldout_prompts"]
    images = np.stack([e["image"] for e in generate.load_caption_examples(generate_run.config.data, "test", DataChecks().images)
                       .as_numpy_iterator()])
    task = generate_run.task
    errors = ((task.decode(task.encode(images)) / 255 - images / 255) ** 2).mean(axis=(1, 2, 3))
    assert metrics["reconstruction_psnr"] == pytest.approx(float(np.mean(-10 * np.log10(errors))), rel=1e-4)
    assert metrics["reconstruction_images"] == len(images)


def test_saved_model_generates_pngs_without_tfmm_as_the_preset_does(generate_run, generate_export, scene_png, tmp_path):
    task, image = generate_run.task, scene_png.read_bytes()
    feed = {"prompt": np.array(["a small red circle", "zzqx"], dtype=object), "seed": np.int64(3),
            "temperature": np.float32(1.0), "top_k": np.int32(0)}  # top_k 0 keeps every code, as everywhere in tfmm
    served = check_in_fresh_process(
        {"generate": (task, "task.encode(inputs['images'])", {"images": [image]})}, tmp_path, generate_export,
        {"generate": feed, "encode": {"image_bytes": np.array([image], dtype=object)}})
    pngs = [Image.open(io.BytesIO(__import__("base64").b64decode(p.split(":", 1)[1]))) for p in served["generate"]["png"]]
    assert all(png.size == (32, 32) for png in pngs)
    assert served["generate"]["known_words"][0] >= 4 and served["generate"]["known_words"][1] == 0
    np.testing.assert_array_equal(served["encode"]["tokens"], task.encode([image]))


@pytest.mark.parametrize("feed,message", [({"temperature": 0.0}, "temperature must be above 0"),
                                          ({"top_k": -1}, "top_k must be 0 (every code) or more"),
                                          ({"prompt": [" "]}, "a prompt is empty")])
def test_saved_model_refuses_bad_requests(generate_export, feed, message):
    import tensorflow as tf

    model = tf.saved_model.load(str(generate_export))
    args = {"prompt": ["a red circle"], "seed": 3, "temperature": 1.0, "top_k": 0, **feed}
    with pytest.raises(tf.errors.InvalidArgumentError, match=message.replace("(", r"\(").replace(")", r"\)")):
        model.signatures["generate"](prompt=tf.constant(args["prompt"]), seed=tf.constant(args["seed"], tf.int64),
                                     temperature=tf.constant(args["temperature"]), top_k=tf.constant(args["top_k"]))


def test_tflite_vqvae_decoder_matches_keras(generate_export):
    parity = json.loads((generate_export / "tflite" / "parity.json").read_text())
    assert parity["vqvae_decoder_float32.tflite"]["max_pixel_difference"] < 1e-4
    assert parity["vqvae_decoder_dynamic_int8.tflite"]["mean_pixel_difference"] < 0.05


def test_eval_scores_samples_with_a_trained_retrieval_model(generate_run, trained_run):
    sets = generate.Generate().prompt_sets(generate_run.config, 4)
    metrics = evaluate_generator(generate_run.task, {"test": sets["test"]}, retrieval=trained_run.task)
    texts, _, real = sets["test"]
    expected = np.mean(np.sum(trained_run.task.embed_images(real) * trained_run.task.embed_texts(texts), axis=-1))
    assert metrics["test_retrieval_similarity_real_images"] == pytest.approx(float(expected), abs=1e-5)
    assert -1 <= metrics["test_retrieval_similarity_samples"] <= 1 and "test_prompt_fidelity" not in metrics
