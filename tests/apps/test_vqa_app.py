import json

import numpy as np
import pytest
from PIL import Image

from tfmm.apps import vqa
from tfmm.data import DataChecks, easy_vqa
from tfmm.export.saved_model import versions
from tfmm.export.tflite import TFLiteRunner, op_names
from tfmm.layers import fusion_options
from tfmm.models import save_preset
from tfmm.testing import assert_picture, check_in_fresh_process, tiny_tasks, train_app


def run_cli(*argv):
    return vqa.main([str(a) for a in argv])


def tiny_vqa_config(source, output_dir, **data):
    config = vqa.VQAConfig()
    config.data.source = str(source)
    config.data.image_size = 32
    config.data.batch_size = 8
    config.data.validation_fraction = 0.15
    for key, value in data.items():
        setattr(config.data, key, value)
    config.model.image_encoder.size = "tiny"
    config.model.fusion = fusion_options("concat", hidden_dim=16)  # learns fastest (0.61 against a 0.40 majority here)
    config.model.classifier_hidden_dim = 16
    config.train.epochs = 10
    config.train.learning_rate = 5e-3
    config.train.output_dir = str(output_dir)
    config.export.base_dir = str(output_dir / "saved_models")
    config.export.representative_examples = 8
    return config


@pytest.fixture(scope="module")
def vqa_data(tmp_path_factory):
    """A dataset root in easy-VQA's layout (train/ and test/), freshly generated."""
    root = tmp_path_factory.mktemp("easy_vqa_style")
    easy_vqa.generate(root / "train", 80, seed=1)
    easy_vqa.generate(root / "test", 20, seed=2)
    return root


@pytest.fixture(scope="module")
def vqa_run(vqa_data, tmp_path_factory):
    return train_app(vqa.VQA(), tiny_vqa_config(vqa_data, tmp_path_factory.mktemp("vqa_runs")))


@pytest.fixture(scope="module")
def vqa_export(vqa_run):
    return vqa_run.export()


def test_training_writes_a_preset_and_learns_from_the_images(vqa_run):
    for name in ("preset/task.json", "preset/model.weights.h5", "preset/assets/tokenizer/vocabulary.txt",
                 "config.toml", "best.weights.h5", "final.weights.h5", "history.csv"):
        assert (vqa_run.path / name).is_file(), name
    assert set(vqa_run.task.answer_vocabulary) <= set(easy_vqa.ANSWERS)
    columns = (vqa_run.path / "history.csv").read_text().splitlines()[0].split(",")
    losses = [float(row.split(",")[columns.index("loss")]) for row in (vqa_run.path / "history.csv").read_text().splitlines()[1:]]
    assert len(losses) == 10 and losses[-1] < 0.7 * losses[0], losses
    metrics = vqa_run.evaluate()
    # Better than always giving the most common test answer.
    groups = vqa_run.runner.app.load_split(vqa_run.config, "test", DataChecks())
    answers = [a for group in groups.as_numpy_iterator() for a in group["answers"]]
    majority = max(answers.count(a) for a in set(answers)) / len(answers)
    assert metrics["accuracy"] > majority, (metrics["accuracy"], majority)


def test_eval_reports_per_type_and_writes_json(vqa_run, vqa_data, tmp_path):
    out = tmp_path / "eval.json"
    assert run_cli("eval", "--model", vqa_run.path, "--output", out) == 0
    metrics = json.loads(out.read_text())
    questions = json.loads((vqa_data / "test" / "questions.json").read_text())
    assert metrics["questions"] == metrics["examples"] == len(questions)
    assert metrics["questions_colour"] + metrics["questions_shape"] + metrics["questions_yes_no"] == len(questions)
    assert metrics["errors"] == round(len(questions) * (1 - metrics["accuracy"]))


def test_eval_on_a_directory_skips_answers_outside_the_vocabulary(vqa_run, tmp_path, capsys):
    easy_vqa.generate(tmp_path, 5, seed=9)
    rows = json.loads((tmp_path / "questions.json").read_text())
    rows.append(["what is the texture?", "striped", 0])
    (tmp_path / "questions.json").write_text(json.dumps(rows))
    out = tmp_path / "eval.json"
    assert run_cli("eval", "--model", vqa_run.path, "--data", tmp_path, "--output", out) == 0
    metrics = json.loads(out.read_text())
    assert metrics["skipped_unknown_answers"] == 1 and metrics["questions"] == len(rows) - 1
    assert "'striped' ×1" in capsys.readouterr().out


def test_predict_prints_top5(vqa_run, vqa_data, tmp_path):
    image = vqa_data / "test" / "images" / "0.png"
    out = tmp_path / "answer.json"
    assert run_cli("predict", image, "--question", "what color is the shape?", "--model", vqa_run.path, "--output", out) == 0
    result = json.loads(out.read_text())
    assert result["answer"] == result["top5"][0]["answer"] and len(result["top5"]) == 5
    probabilities = [t["probability"] for t in result["top5"]]
    assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1.0 + 1e-5
    assert result["answer"] == vqa_run.task.answer([image.read_bytes()], ["what color is the shape?"])[0]


@pytest.mark.parametrize("question,message", [("   ", "question #0 is empty"), ("zzqx wvvk", "has no word the model knows")])
def test_predict_rejects_unreadable_questions(vqa_run, vqa_data, capsys, question, message):
    image = vqa_data / "test" / "images" / "0.png"
    assert run_cli("predict", image, "--question", question, "--model", vqa_run.path) == 2
    assert message in capsys.readouterr().err


def test_bad_images_and_directories_are_named(vqa_run, tmp_path, capsys):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG but not really")
    assert run_cli("predict", broken, "--question", "what color is the shape?", "--model", vqa_run.path) == 2
    assert "broken.png" in capsys.readouterr().err
    assert run_cli("eval", "--model", vqa_run.path, "--data", tmp_path) == 2
    assert "questions.json is missing" in capsys.readouterr().err


def test_a_trained_model_fixes_its_model_section_and_image_size(vqa_run, capsys):
    # The old failure: `eval --set model.sequence_length=16` tokenised questions to another length than the model read.
    assert run_cli("eval", "--model", vqa_run.path, "--set", "model.sequence_length=16") == 2
    assert "fixes its model section" in capsys.readouterr().err
    assert run_cli("eval", "--model", vqa_run.path, "--set", "data.image_size=48") == 2
    assert "takes 32×32 images" in capsys.readouterr().err


def test_a_bare_preset_works_as_model_and_plots_need_an_attention_fusion(vqa_run, vqa_data, tmp_path, capsys):
    preset = save_preset(tiny_tasks.answerer("cross_attention", answers=easy_vqa.ANSWERS), tmp_path / "attention")
    image, plot = vqa_data / "test" / "images" / "1.png", tmp_path / "attention.png"
    assert run_cli("predict", image, "--question", "what shape is present?", "--model", preset, "--plot", plot) == 0
    assert "→" in capsys.readouterr().out and Image.open(plot).size[0] > 100
    assert run_cli("predict", image, "--question", "what shape is present?", "--model", vqa_run.path,
                   "--plot", tmp_path / "p.png") == 2
    assert "(ConcatFusion) has no attention over the image" in capsys.readouterr().err
    assert vqa_run.runner.app.main_pictures(vqa_run.task, vqa_run.config, tmp_path) == []  # nothing to draw


def test_saved_model_and_preset_answer_alike_in_a_fresh_process(vqa_run, vqa_export, vqa_data, tmp_path):
    assert vqa_export.name == str(max(versions(vqa_export.parent)))
    encoded = [(vqa_data / "test" / "images" / f"{i}.png").read_bytes() for i in range(3)]
    questions = ["what color is the shape?", "what shape is present?", "is there a red shape?"]
    served = check_in_fresh_process(
        {"vqa": (vqa_run.task, "task.answer(inputs['images'], inputs['questions'])", {"images": encoded, "questions": questions})},
        tmp_path, vqa_export,
        {"serving_default": {"image_bytes": np.array(encoded, dtype=object), "question": np.array(questions, dtype=object)}},
    )["serving_default"]
    assert served["answer"] == vqa_run.task.answer(encoded, questions)
    np.testing.assert_allclose(served["probabilities"], vqa_run.task.answer_details(encoded, questions)["probabilities"],
                               atol=1e-4)


def test_tflite_runs_with_builtin_ops_and_agrees_with_keras(vqa_run, vqa_export):
    tflite = vqa_export / "tflite"
    assert (tflite / "answers.txt").read_text().split("\n")[0] == vqa_run.task.answer_vocabulary[0]
    parity = json.loads((tflite / "parity.json").read_text())
    assert parity["answerer_float32.tflite"]["answer_agreement"] == 1.0
    assert parity["answerer_float32.tflite"]["max_probability_difference"] < 1e-3
    assert parity["answerer_int8.tflite"]["answer_agreement"] >= 0.75
    content = (tflite / "answerer_float32.tflite").read_bytes()
    assert not [op for op in op_names(content) if op.startswith("Flex")]
    # The phone-side path: tokenize on the host with the shipped vocabulary, run the interpreter.
    from tfmm.models import VisualQuestionAnswererPreprocessor
    from tfmm.text import WordPieceTokenizer, load_vocabulary

    host = VisualQuestionAnswererPreprocessor(WordPieceTokenizer(load_vocabulary(tflite / "vocabulary.txt")),
                                              sequence_length=vqa_run.task.preprocessor.sequence_length)
    tokens = host.tokenize_numpy(["what shape is present?"])
    pixels = tiny_tasks.images(1, size=32)
    got = TFLiteRunner(content)(images=pixels.astype(np.float32) / 255, token_ids=tokens["token_ids"][:, None],
                                padding_mask=tokens["padding_mask"][:, None])
    expected = vqa_run.task.answer_details(pixels, ["what shape is present?"])["probabilities"]
    np.testing.assert_allclose(got["probabilities"][:, 0], expected, atol=1e-4)


def test_video_clips_train_and_answer_from_frames(tmp_path, capsys):
    config = tiny_vqa_config("clips", tmp_path, clips_size="tiny", frames=3)
    config.model.fusion = fusion_options("cross_attention", hidden_dim=16, num_heads=2)  # its attention is plotted
    config.train.epochs = 1
    run = train_app(vqa.VQA(), config)
    assert run.task.backbone.frames == 3
    metrics = run.evaluate()
    assert {"accuracy_direction", "accuracy_colour", "accuracy_shape", "accuracy_yes_no"} <= set(metrics)
    from tfmm.data import clips

    clip, _ = clips.generate_clip(np.random.default_rng(1), 3, 32)
    paths = []
    for index, frame in enumerate(clip):
        paths.append(tmp_path / f"frame{index}.png")
        Image.fromarray(frame).save(paths[-1])
    assert run_cli("predict", *paths, "--question", "which way is the red circle moving?", "--model", run.path,
                   "--plot", tmp_path / "clip.png") == 0
    assert "→" in capsys.readouterr().out and (tmp_path / "clip.png").is_file()
    assert run_cli("predict", paths[0], "--question", "what shape is moving?", "--model", run.path) == 2
    assert "takes 3 image file(s), got 1" in capsys.readouterr().err
    pictures = run.runner.app.main_pictures(run.task, run.config, tmp_path)
    assert [p.name for p in pictures] == ["attention.png"]
    assert_picture(pictures[0])


def test_the_export_is_served_over_rest_by_tfmm_serving(vqa_run, vqa_export, vqa_data, tmp_path):
    import base64

    import httpx

    from tests.serving.conftest import serving

    with serving("vqa", vqa_export.parent, tmp_path) as server:
        image = vqa_data / "test" / "images" / "2.png"
        body = {"instances": [{"image_bytes": {"b64": base64.b64encode(image.read_bytes()).decode()},
                               "question": "what shape is present?"}]}
        with httpx.Client(base_url=f"http://127.0.0.1:{server.rest_port}", timeout=60) as client:
            response = client.post("/v1/models/vqa:predict", json=body)
            assert response.status_code == 200, response.text
            prediction = response.json()["predictions"][0]
            assert prediction["top_answers"][0] == prediction["answer"] and len(prediction["top_probabilities"]) == 5
            empty = client.post("/v1/models/vqa:predict", json={"instances": [{**body["instances"][0], "question": " "}]})
            assert empty.status_code == 400 and "a question is empty" in empty.json()["error"]
    assert prediction["answer"] == vqa_run.task.answer([image.read_bytes()], ["what shape is present?"])[0]


@pytest.mark.parametrize("override,message", [
    ("model.fusion=average", "unknown fusion 'average'"),
    ("model.fusion.rank=3", "fusion 'concat' does not take 'rank'"),
    ("data.validation_fraction=0.6", "data.validation_fraction must be in [0, 0.5)"),
])
def test_config_mistakes_fail_before_reading_data_in_one_line(capsys, override, message):
    assert run_cli("train", "--set", override) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
