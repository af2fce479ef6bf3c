import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tfmm.apps import retrieval
from tfmm.data import DataChecks
from tfmm.data.shapes import COMBINATIONS, HELDOUT_COMBINATIONS, generate_example
from tfmm.errors import TfmmError


def run_cli(*argv):
    return retrieval.main([str(a) for a in argv])


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    for index in range(4):
        Image.fromarray(generate_example(0, "test", index, image_size=32)["image"]).save(folder / f"{index}.png")
    return folder


def test_trained_model_learns_something(trained_run):
    metrics = trained_run.evaluate("test")
    assert metrics["images"] == 32 and metrics["captions"] >= 4 * 32
    # Chance for Recall@10 over 32 images is about 0.31.
    assert metrics["text_to_image_recall@10"] > 0.45


def test_eval_writes_json(trained_run, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert run_cli("eval", "--model", trained_run.path, "--output", out) == 0
    metrics = json.loads(out.read_text())
    for direction in ("text_to_image", "image_to_text"):
        values = [metrics[f"{direction}_recall@{k}"] for k in (1, 5, 10)]
        assert 0 <= values[0] <= values[1] <= values[2] <= 1
    test_images = sum(1 for _ in retrieval.Retrieval().load_split(trained_run.config, "test", DataChecks()))
    assert metrics["examples"] == metrics["images"] == test_images
    assert "text_to_image_recall@1" in capsys.readouterr().out


def test_zero_shot_relabels_the_heldout_images_among_the_heldout_classes(trained_run, tmp_path):
    out = tmp_path / "zs.json"
    assert run_cli("zero-shot", "--model", trained_run.path, "--output", out) == 0
    metrics = json.loads(out.read_text())
    assert metrics["split"] == "heldout" and metrics["classes"] == 30
    # Oracle: the same numbers from the embeddings by brute force.
    task, app = trained_run.task, trained_run.runner.app
    from tfmm.data import DataChecks
    from tfmm.evaluation.retrieval import split_arrays

    images, _, labels, _, _ = split_arrays(app.load_split(trained_run.config, "heldout", DataChecks()))
    classes = task.class_embeddings(list(COMBINATIONS))
    scores = task.embed_images(images) @ classes.T
    assert metrics["top1_accuracy"] == pytest.approx(np.mean(scores.argmax(-1) == labels))
    heldout = [COMBINATIONS.index(f"{c} {s}") for c, s in HELDOUT_COMBINATIONS]
    among_heldout = np.array(heldout)[scores[:, heldout].argmax(-1)]  # each image's best held-out class
    assert metrics["subset_top1_accuracy"] == pytest.approx(np.mean(among_heldout == labels))
    assert metrics["subset_images"] == len(images)


def test_index_is_incremental_and_search_works_both_ways(trained_run, image_folder, tmp_path, capsys):
    index = tmp_path / "index.npz"
    captions = tmp_path / "captions.txt"
    captions.write_text("a small red circle\na large blue star\n")
    assert run_cli("index", "--model", trained_run.path, "--index", index, "--images", image_folder, "--captions", captions) == 0
    assert "added 4 image(s) and 2 caption(s)" in capsys.readouterr().out
    Image.fromarray(generate_example(0, "test", 9, image_size=32)["image"]).save(image_folder / "new.png")
    assert run_cli("index", "--model", trained_run.path, "--index", index, "--images", image_folder) == 0
    assert "added 1 image(s) and 0 caption(s); now 5 images, 2 captions" in capsys.readouterr().out
    out = tmp_path / "search.json"
    assert run_cli("search", "--model", trained_run.path, "--index", index, "--text", "a red circle", "--top-k", 3,
                   "--output", out) == 0
    results = json.loads(out.read_text())["results"]
    # Oracle: the cosine of the query to every indexed image, ranked.
    paths = sorted(image_folder.glob("*.png"))
    scores = trained_run.task.embed_images([p.read_bytes() for p in paths]) @ trained_run.task.embed_texts(["a red circle"])[0]
    expected = [str(paths[i].resolve()) for i in np.argsort(-scores)[:3]]
    assert [r["match"] for r in results] == expected
    assert run_cli("search", "--model", trained_run.path, "--index", index, "--image", image_folder / "0.png") == 0
    assert "a small red circle" in capsys.readouterr().out


def test_predict_gives_probabilities(trained_run, image_folder, tmp_path):
    out = tmp_path / "p.json"
    assert run_cli("predict", "--model", trained_run.path, image_folder / "0.png", "--classes", "red circle,blue star",
                   "--output", out) == 0
    prediction = json.loads(out.read_text())["predictions"][0]
    expected = trained_run.task.zero_shot([(image_folder / "0.png").read_bytes()], ["red circle", "blue star"])
    assert prediction["label"] == expected["labels"][0]
    assert sum(p["probability"] for p in prediction["top5"]) == pytest.approx(1.0, abs=1e-4)


def test_pictures_of_search_and_zero_shot(trained_run, image_folder, tmp_path):
    from tfmm.testing import assert_picture

    assert run_cli("predict", "--model", trained_run.path, image_folder / "0.png", "--classes", "red circle,blue star",
                   "--plot", tmp_path / "zero_shot.png") == 0
    assert_picture(tmp_path / "zero_shot.png")
    index = tmp_path / "index.npz"
    assert run_cli("index", "--model", trained_run.path, "--index", index, "--images", image_folder) == 0
    assert run_cli("search", "--model", trained_run.path, "--index", index, "--text", "a red circle", "--top-k", 3,
                   "--plot", tmp_path / "search.png") == 0
    assert_picture(tmp_path / "search.png")
    assert run_cli("search", "--model", trained_run.path, "--index", index, "--image", image_folder / "0.png",
                   "--plot", tmp_path / "no.png") == 2
    pictures = trained_run.runner.app.main_pictures(trained_run.task, trained_run.config, tmp_path)
    assert [p.name for p in pictures] == ["search.png"]
    assert_picture(pictures[0])


@pytest.mark.parametrize("argv,message", [
    (["eval", "--set", "data.sourse=x"], "unknown config key 'data.sourse'"),
    (["eval", "--set", "model.embedding_dim=8"], "fixes its model section"),
    (["train", "--set", "model.image_encodr=vit"], "unknown config key 'model.image_encodr'"),
    (["train", "--set", "model.image_encoder=vgg"], "unknown image encoder 'vgg'"),
    (["train", "--set", "model.image_encoder.normalization=batch", "--set", "model.image_encoder=vit"],
     "image encoder 'vit' does not take 'normalization'"),
    (["train", "--set", "model.image_encoder=vit", "--set", "data.image_size=60"], "not divisible by the patch size 8"),
    (["train", "--set", "zero_shot.templates=[\"a photo\"]"], "must contain '{}' exactly once"),
    (["train", "--set", "train.learning_rate=0"], "train.learning_rate must be above 0"),
    (["train", "--set", "export.tflite_quantization=[\"int4\"]"], "export.tflite_quantization has ['int4']"),
    (["eval", "--model", "/nonexistent/run"], "model not found: /nonexistent/run"),
    (["zero-shot", "--classes", " , "], "has an empty class name"),
    (["predict", "missing.png"], "missing.png: missing"),
    (["search", "--index", "none.npz", "--text", "x"], "index not found: none.npz"),
])
def test_user_mistakes_give_one_line_and_exit_2(trained_run, argv, message, capsys):
    if "--model" not in argv and argv[0] != "train":
        argv = [argv[0], "--model", str(trained_run.path), *argv[1:]]
    assert run_cli(*argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err, err


def test_bad_image_and_empty_text_are_named(trained_run, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG broken")
    assert run_cli("predict", "--model", trained_run.path, bad) == 2
    assert "bad.png: unreadable image" in capsys.readouterr().err
    with pytest.raises(TfmmError, match="text #1 is empty"):
        trained_run.task.embed_texts(["ok", "  "])
    with pytest.raises(TfmmError, match="class list is empty"):
        trained_run.task.class_embeddings([], ["a {}"])


def test_real_process_exit_code_for_a_user_mistake(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tfmm.apps.retrieval", "train", "--set", "nope=1"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: --set: unknown config key 'nope'")
    assert "Traceback" not in result.stderr


def test_save_presets_gives_encoders_other_apps_load(trained_run, tmp_path, capsys):
    from tfmm.encoders import build_image_encoder, image_encoder_options, preset_vocabulary

    out = tmp_path / "presets"
    assert run_cli("save-presets", "--model", trained_run.path, "--output", out) == 0
    image_encoder = build_image_encoder(image_encoder_options("cnn", size="tiny", weights=str(out / "image_encoder")), 32)
    images = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    np.testing.assert_allclose(image_encoder(images)["pooled_output"],
                               trained_run.task.backbone.image_encoder(images)["pooled_output"], atol=1e-5)
    assert preset_vocabulary(out / "text_encoder") == trained_run.task.preprocessor.vocabulary
    assert run_cli("save-presets", "--model", trained_run.path, "--output", out) == 2
    assert "is not empty" in capsys.readouterr().err
