import csv
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from tfmm.apps import classify
from tfmm.data import shapes
from tfmm.data.reports import TASKS, make_report
from tfmm.export.tflite import op_names


def run_cli(*argv):
    return classify.main([str(a) for a in argv])


def tiny_classify_config(data_dir, output_dir, **model):
    config = classify.ClassifyConfig()
    config.data.shapes_config = "tiny"
    config.data.data_dir = str(data_dir)
    config.data.image_size = 32
    config.data.batch_size = 16
    config.data.label_columns = ["finding", "shape", "colour"]
    config.model.image_encoder_size = "tiny"
    config.model.fusion_dim = 16
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
    return classify.train(tiny_classify_config(tfds_dir, tmp_path_factory.mktemp("classify_runs"), loss_weighting="uncertainty"))


@pytest.fixture(scope="module")
def classify_export(classify_run):
    return classify.export(classify_run)


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
    weights = classify_run.model.task_weights()
    assert set(weights) == {"finding", "shape", "colour"} and all(w > 0 for w in weights.values())
    assert classify_run.model.log_variances.trainable


def test_eval_reports_f1_per_class_and_missing_modalities(classify_run, tmp_path):
    out = tmp_path / "eval.json"
    assert run_cli("eval", "--model", classify_run.path, "--output", out) == 0
    metrics = json.loads(out.read_text())
    finding = metrics["finding"]
    assert finding["examples"] == 32 and set(finding["per_class"]) == set(TASKS["finding"])
    assert 0 <= finding["macro_f1"] <= 1
    supports = sum(c["support"] for c in finding["per_class"].values())
    assert supports == 32
    for missing in ("image", "text"):
        assert run_cli("eval", "--model", classify_run.path, "--missing", missing, "--output", out) == 0
        assert json.loads(out.read_text())["missing"] == missing


def test_missing_modality_inputs_are_blank():
    config = classify.ClassifyConfig()
    config.data.label_columns = ["finding"]
    dataset = __import__("tensorflow").data.Dataset.from_tensor_slices({
        "image": np.full((4, 8, 8, 3), 200, np.uint8), "text": ["target colour: red."] * 4,
        "labels": {"finding": ["absent", "circle", "star", "nonsense"]},
    })
    from tfmm.text import TextPreprocessor, learn_vocabulary

    preprocessor = TextPreprocessor(learn_vocabulary(["target colour: red."], 50), 8)
    classes = {"finding": list(TASKS["finding"])}
    config.data.batch_size = 4
    for missing in ("image", "text"):
        inputs, labels, weights = next(iter(classify.pipeline(config, dataset, preprocessor, classes, False, missing=missing)))
        if missing == "image":
            assert float(np.abs(inputs["images"]).max()) == 0.0 and int(inputs["padding_mask"].numpy().sum()) > 4 * 2
        else:
            assert float(inputs["images"].numpy().min()) > 0.7 and inputs["padding_mask"].numpy().sum(-1).tolist() == [2] * 4
    assert weights["finding"].numpy().tolist() == [1, 1, 1, 0]  # an unknown label carries no loss


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
    run = classify.train(config)
    out = capsys.readouterr().out
    assert f"{table}:5: label column 'label' is empty" in out and f"{table}:6: text column 'text' is empty" in out
    assert "missing.png: missing" in out and "skipped 2 bad row(s)" in out
    assert run.tasks["label"] == sorted({r["label"] for r in rows if r["label"]} & set(run.tasks["label"]))
    config.data.strict = True
    with pytest.raises(Exception, match=":5: label column 'label' is empty"):
        classify.train(config)


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
    run = classify.train(config)
    test_rows = user_rows(folder, 6)
    test_rows[0]["label"] = "infrared"
    write_table(folder, test_rows, "test.csv")
    metrics = classify.evaluate(run, "test")
    unknown = sum(1 for row in test_rows if row["label"] not in run.tasks["label"])
    assert unknown >= 1 and metrics["label"]["skipped_unknown_labels"] == unknown
    assert metrics["label"]["examples"] == 6 - unknown


def test_single_modality_baselines_build_without_fusion(tfds_dir, tmp_path):
    for modalities in ("image", "text"):
        config = tiny_classify_config(tfds_dir, tmp_path, modalities=modalities)
        model = classify.build_model(config, 50, {"finding": list(TASKS["finding"])})
        assert model.fusion is None and model.modalities == modalities
        from tfmm.testing import assert_keras_round_trip

        inputs = {"images": np.random.rand(2, 32, 32, 3).astype("float32"),
                  "token_ids": np.ones((2, 32), "int32"), "padding_mask": np.ones((2, 32), "int32")}
        assert_keras_round_trip(model, inputs, atol=1e-5)


def test_pretrained_encoder_trains_at_a_smaller_rate(tfds_dir, tmp_path):
    from tfmm.encoders import build_image_encoder

    preset = tmp_path / "cnn_preset"
    build_image_encoder("cnn", "tiny", 32).save_to_preset(str(preset))
    config = tiny_classify_config(tfds_dir, tmp_path, image_encoder_weights=str(preset), image_encoder_trainable="top-1",
                                  pretrained_learning_rate_multiplier=0.1)
    model = classify.build_model(config, 50, {"finding": list(TASKS["finding"])})
    multipliers = classify.pretrained_multipliers(config)(model)
    trainable = model.image_encoder.trainable_variables
    assert multipliers and set(multipliers) == {v.path for v in trainable}
    assert len(trainable) < len(model.image_encoder.weights)  # top-1: earlier blocks frozen
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


def test_saved_model_and_tflite(classify_run, classify_export, tmp_path):
    image = tmp_path / "scene.png"
    Image.fromarray(shapes.generate_example(0, "test", 5, image_size=32)["image"]).save(image)
    text = "target colour: red. image quality is adequate."
    script = textwrap.dedent(f"""
        import json, sys
        import tensorflow as tf
        import tensorflow_text  # noqa: F401
        model = tf.saved_model.load({str(classify_export)!r})
        out = model.signatures["serving_default"](image_bytes=tf.constant([open({str(image)!r}, "rb").read()]),
                                                  text=tf.constant([{text!r}]))
        assert "tfmm" not in sys.modules
        print(json.dumps({{k: v.numpy().tolist() if v.dtype != tf.string else [x.decode() for x in v.numpy()]
                           for k, v in out.items()}}))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env={**os.environ}, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    served = json.loads(done.stdout.strip().splitlines()[-1])
    local = classify_run.classify(classify.load_image(image, 32), [text])
    for task, names in classify_run.tasks.items():
        np.testing.assert_allclose(served[f"{task}_probabilities"], local[f"{task}_probabilities"], atol=1e-4)
        assert served[task] == [names[int(local[f"{task}_probabilities"].argmax())]]
    parity = json.loads((classify_export / "tflite" / "parity.json").read_text())
    for task in ("finding", "shape", "colour"):
        assert parity["classifier_float32.tflite"][f"{task}_agreement"] == 1.0
        assert parity["classifier_float32.tflite"][f"{task}_max_probability_difference"] < 1e-3
    assert not [op for op in op_names(classify_export / "tflite" / "classifier_int8.tflite") if op.startswith("Flex")]
