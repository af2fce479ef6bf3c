import csv
import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfmm.apps import classify
from tfmm.data import shapes
from tfmm.data.reports import TASKS, make_report
from tfmm.evaluation import evaluate_classifier
from tfmm.export.tflite import op_names
from tfmm.layers import fusion_options
from tfmm.testing import assert_picture, check_in_fresh_process, tiny_tasks, train_app


def run_cli(*argv):
    return classify.main([str(a) for a in argv])


def tiny_classify_config(data_dir, output_dir, **model):
    config = classify.ClassifyConfig()
    config.data.shapes_config = "tiny"
    config.data.data_dir = str(data_dir)
    config.data.image_size = 32
    config.data.batch_size = 16
    config.data.label_columns = ["finding", "shape", "colour"]
    config.model.image_encoder.size = "tiny"
    config.model.fusion.hidden_dim = 16
    config.model.hidden_dim = 16
    config.model.sequence_length = 32
    for key, value in model.items():
        setattr(config.model, key, value)
    config.train.epochs = 6
    config.train.learning_rate = 5e-3
    config.train.output_dir = str(output_dir)
    config.export.base_dir = str(output_dir / "saved_models")
    config.export.representative_examples = 8
    return config


@pytest.fixture(scope="module")
def classify_run(tfds_dir, tmp_path_factory):
    config = tiny_classify_config(tfds_dir, tmp_path_factory.mktemp("classify_runs"), loss_weighting="uncertainty")
    return train_app(classify.Classify(), config)


@pytest.fixture(scope="module")
def classify_export(classify_run):
    return classify_run.export()


def test_reports_need_both_modalities():
    rng = np.random.default_rng(0)
    findings = []
    for _ in range(200):
        text, labels = make_report(rng, [("red", "circle"), ("blue", "star")])
        findings.append(labels["finding"])
        if labels["finding"] == "circle":
            assert "red" in text
        elif labels["finding"] == "star":
            assert "blue" in text
        else:
            assert labels["finding"] == "absent"
        assert labels["shape"] == "circle" and labels["colour"] == "red"
    # About half the reports ask for a colour the image has: neither the text nor the image alone decides.
    assert 70 < findings.count("absent") < 130 and findings.count("circle") > 30 and findings.count("star") > 30


def test_training_learns_every_task_and_uncertainty_weights(classify_run):
    history = (classify_run.path / "history.csv").read_text().splitlines()
    columns = history[0].split(",")
    first, last = (dict(zip(columns, map(float, row.split(",")))) for row in (history[1], history[-1]))
    assert last["loss"] < first["loss"]
    weights = classify_run.task.task_weights()
    assert set(weights) == {"finding", "shape", "colour"} and all(w > 0 for w in weights.values())
    assert classify_run.task.log_variances.trainable


def test_eval_reports_f1_per_class_and_missing_modalities(classify_run, tmp_path):
    out = tmp_path / "eval.json"
    assert run_cli("eval", "--model", classify_run.path, "--output", out) == 0
    metrics = json.loads(out.read_text())
    finding = metrics["finding"]
    assert metrics["examples"] == finding["examples"] == 32 and set(finding["per_class"]) == set(TASKS["finding"])
    assert 0 <= finding["macro_f1"] <= 1
    supports = sum(c["support"] for c in finding["per_class"].values())
    assert supports == 32
    for missing in ("image", "text"):
        assert run_cli("eval", "--model", classify_run.path, "--missing", missing, "--output", out) == 0
        assert json.loads(out.read_text())["missing"] == missing


def test_a_missing_modality_is_a_black_image_or_an_empty_text():
    task = tiny_tasks.classifier("concat", {"finding": list(TASKS["finding"])})
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)
    texts = [f"target colour: {c}." for c in ("red", "blue", "green", "white") * 2]
    labels = ["absent", "circle", "star", "nonsense", "cross", "square", "absent", "star"]

    def dataset(images, texts):
        return tf.data.Dataset.from_tensor_slices({"image": images, "text": texts, "labels": {"finding": labels}})

    without_image = evaluate_classifier(task, dataset(images, texts), "image")
    assert without_image["finding"] == evaluate_classifier(task, dataset(np.zeros_like(images), texts))["finding"]
    without_text = evaluate_classifier(task, dataset(images, texts), "text")
    assert without_text["finding"] == evaluate_classifier(task, dataset(images, [""] * 8))["finding"]
    assert without_text["finding"]["examples"] == 7 and without_text["finding"]["skipped_unknown_labels"] == 1


def test_predict_and_bad_input(classify_run, tmp_path, capsys):
    image = tmp_path / "scene.png"
    Image.fromarray(shapes.generate_example(0, "test", 3, image_size=32)["image"]).save(image)
    out = tmp_path / "p.json"
    assert run_cli("predict", image, "--text", "please check for a red object.", "--model", classify_run.path, "--output", out) == 0
    result = json.loads(out.read_text())
    assert set(result) == {"finding", "shape", "colour"} and result["finding"]["label"] in TASKS["finding"]
    assert run_cli("predict", image, "--text", "  ", "--model", classify_run.path) == 2
    assert "text #0 is empty" in capsys.readouterr().err
    assert run_cli("predict", tmp_path / "none.png", "--text", "x", "--model", classify_run.path) == 2
    assert "none.png: missing" in capsys.readouterr().err
    assert run_cli("predict", image, "--text", "a red object.", "--model", classify_run.path, "--plot", tmp_path / "p.png") == 0
    assert_picture(tmp_path / "p.png")
    pictures = classify_run.runner.app.main_pictures(classify_run.task, classify_run.config, tmp_path)
    assert [p.name for p in pictures] == ["classify.png"]
    assert_picture(pictures[0])


def write_table(folder, rows, name="data.csv"):
    path = folder / name
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def user_rows(folder, count=24):
    (folder / "images").mkdir(exist_ok=True)
    rows = []
    for index in range(count):
        example = shapes.generate_example(1, "train", index, image_size=32)
        Image.fromarray(example["image"]).save(folder / "images" / f"{index}.png")
        rows.append({"image": f"images/{index}.png", "text": example["captions"][0], "label": example["objects"]["colour"][0]})
    return rows


def test_user_table_bad_rows_are_named_skipped_and_counted(tmp_path, capsys):
    rows = user_rows(tmp_path)
    rows[3]["label"] = ""
    rows[4]["text"] = "  "
    rows[5]["image"] = "images/missing.png"
    table = write_table(tmp_path, rows)
    config = tiny_classify_config(tmp_path, tmp_path / "out")
    config.data.source = str(table)
    config.data.label_columns = ["label"]
    config.data.validation_fraction = 0.2
    config.data.batch_size = 4
    config.train.epochs = 1
    run = train_app(classify.Classify(), config)
    out = capsys.readouterr().out
    assert f"{table}:5: label column 'label' is empty" in out and f"{table}:6: text column 'text' is empty" in out
    assert "missing.png: missing" in out and "skipped 2 bad row(s)" in out
    labels = run.task.tasks["label"]
    assert labels == sorted({r["label"] for r in rows if r["label"]} & set(labels))
    config.data.strict = True
    with pytest.raises(Exception, match=":5: label column 'label' is empty"):
        train_app(classify.Classify(), config)


def test_missing_label_column_and_unknown_labels(classify_run, tmp_path, tfds_dir, capsys):
    rows = user_rows(tmp_path, 8)
    table = write_table(tmp_path, rows)
    assert run_cli("train", "--set", f"data.source={table}", "--set", 'data.label_columns=["diagnosis"]') == 2
    assert "column(s) diagnosis missing" in capsys.readouterr().err
    # Evaluation on rows whose labels the model never saw: reported and skipped.
    folder = tmp_path / "split"
    folder.mkdir()
    rows = user_rows(folder, 6)
    for row in rows[:2]:
        row["label"] = "ultraviolet"
    write_table(folder, rows, "train.csv")
    config = tiny_classify_config(tfds_dir, tmp_path / "out2")
    config.data.source = str(folder)
    config.data.label_columns = ["label"]
    config.data.batch_size = 2
    config.train.epochs = 1
    write_table(folder, rows[2:], "validation.csv")
    run = train_app(classify.Classify(), config)
    test_rows = user_rows(folder, 6)
    test_rows[0]["label"] = "infrared"
    write_table(folder, test_rows, "test.csv")
    metrics = run.evaluate("test")
    unknown = sum(1 for row in test_rows if row["label"] not in run.task.tasks["label"])
    assert unknown >= 1 and metrics["label"]["skipped_unknown_labels"] == unknown
    assert metrics["label"]["examples"] == 6 - unknown


@pytest.mark.parametrize("fusion,modality", [("image_only", "image"), ("text_only", "text")])
def test_single_modality_baselines_build_without_fusion(tfds_dir, tmp_path, fusion, modality):
    config = tiny_classify_config(tfds_dir, tmp_path)
    config.model.fusion = fusion_options(fusion, hidden_dim=16)
    app = classify.Classify()
    preprocessor = tiny_tasks.classifier("concat", {"finding": list(TASKS["finding"])}).preprocessor
    preprocessor.image_converter = classify.image_converter(config)
    task = app.build_task(config, preprocessor)
    assert task.backbone.fusion is None and task.backbone.modalities == modality
    assert f"{modality}_only" in [layer.name for layer in task.backbone.layers]


def test_pretrained_encoder_trains_at_a_smaller_rate(tfds_dir, tmp_path):
    from tfmm.encoders import build_image_encoder, image_encoder_options

    preset = tmp_path / "cnn_preset"
    build_image_encoder(image_encoder_options("cnn", size="tiny"), 32).save_to_preset(str(preset))
    config = tiny_classify_config(tfds_dir, tmp_path, pretrained_learning_rate_multiplier=0.1)
    config.model.image_encoder = image_encoder_options("cnn", size="tiny", weights=str(preset), trainable="top-1",
                                                       normalization="batch")
    preprocessor = tiny_tasks.classifier("concat", {"finding": list(TASKS["finding"])}).preprocessor
    model = classify.Classify().build_task(config, preprocessor)
    multipliers = classify.Classify().learning_rate_multipliers(config)(model)
    trainable = model.backbone.image_encoder.trainable_variables
    assert multipliers and set(multipliers) == {v.path for v in trainable}
    assert len(trainable) < len(model.backbone.image_encoder.weights)  # top-1: earlier blocks frozen
    from tfmm.train import make_optimizer

    optimizer = make_optimizer(config.train, 10, multipliers)
    variable = trainable[0]
    before = variable.numpy().copy()
    other = model.get_layer("finding").kernel
    other_before = other.numpy().copy()
    optimizer.apply([np.ones(variable.shape, "float32"), np.ones(other.shape, "float32")], [variable, other])
    encoder_step = np.abs(variable.numpy() - before).mean()
    head_step = np.abs(other.numpy() - other_before).mean()
    assert 0 < encoder_step < 0.2 * head_step


def test_saved_model_tflite_and_preset_agree(classify_run, classify_export, tmp_path):
    image = tmp_path / "scene.png"
    Image.fromarray(shapes.generate_example(0, "test", 5, image_size=32)["image"]).save(image)
    encoded, text = image.read_bytes(), "target colour: red. image quality is adequate."
    served = check_in_fresh_process(
        {"classify": (classify_run.task, "task.classify(inputs['images'], inputs['texts'])",
                      {"images": [encoded], "texts": [text]})},
        tmp_path, classify_export,
        {"serving_default": {"image_bytes": np.array([encoded], dtype=object), "text": np.array([text], dtype=object)}},
    )["serving_default"]
    local = classify_run.task.classify_details([encoded], [text])
    for task, names in classify_run.task.tasks.items():
        np.testing.assert_allclose(served[f"{task}_probabilities"], local[f"{task}_probabilities"], atol=1e-4)
        assert served[task] == [names[int(local[f"{task}_probabilities"].argmax())]]
    parity = json.loads((classify_export / "tflite" / "parity.json").read_text())
    for task in ("finding", "shape", "colour"):
        assert parity["classifier_float32.tflite"][f"{task}_agreement"] == 1.0
        assert parity["classifier_float32.tflite"][f"{task}_max_probability_difference"] < 1e-3
    assert not [op for op in op_names(classify_export / "tflite" / "classifier_int8.tflite") if op.startswith("Flex")]
