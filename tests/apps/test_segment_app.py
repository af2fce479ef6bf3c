"""The segment app end to end on a tiny config: built-in data, evaluation against a NumPy count, export served in
a fresh process without tfmm, TFLite with parity, the user format, predict, and refusals."""

import base64
import io
import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfmm.apps import segment
from tfmm.data import DataChecks, shapes
from tfmm.data.referring import referring_examples
from tfmm.export.tflite import op_names
from tfmm.testing import assert_picture, check_in_fresh_process, train_app


def run_cli(*argv):
    return segment.main([str(a) for a in argv])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("segment")
    config = segment.SegmentConfig()
    config.data.shapes_config, config.data.image_size, config.data.batch_size = "tiny", 32, 16
    config.data.data_dir = str(out / "data")
    config.model.text_encoder.size = "tiny"
    config.model.filters = [8, 16]
    config.train.epochs, config.train.output_dir = 2, str(out)
    config.export.base_dir, config.export.representative_examples = str(out / "saved_models"), 8
    config.export.tflite_quantization = ["float32", "int8"]
    return train_app(segment.Segment(), config)


@pytest.fixture(scope="module")
def user_folder(tmp_path_factory):
    """Fresh shapes scenes (another seed, 48 px) written in the user format, with one bad row."""
    root = tmp_path_factory.mktemp("user")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    rows = []
    for i in range(5):
        rng = np.random.default_rng([9, 2, i])
        scene = shapes.sample_scene(rng, 48, "test")
        Image.fromarray(shapes.render(scene, 48, rng)).save(root / "images" / f"{i}.png")
        for j, example in enumerate(referring_examples(scene, 48, rng)):
            Image.fromarray(example["mask"] * 255).save(root / "masks" / f"{i}_{j}.png")
            rows.append({"image": f"images/{i}.png", "mask": f"masks/{i}_{j}.png", "text": example["text"]})
    rows.append({"image": "images/0.png", "mask": "masks/0_0.png", "text": ""})
    (root / "refs.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return root, len(rows) - 1


def _ious(predicted, reference):
    predicted, reference = predicted.astype(bool), reference.astype(bool)
    return (predicted & reference).sum((1, 2)) / np.maximum((predicted | reference).sum((1, 2)), 1)


def test_eval_json_matches_a_numpy_count_over_the_split(trained, tmp_path):
    out = tmp_path / "eval.json"
    assert run_cli("eval", "--model", trained.path, "--output", out) == 0
    metrics = json.loads(out.read_text())
    examples = list(segment.Segment().load_split(trained.config, "test", DataChecks()).as_numpy_iterator())
    predicted = trained.task.segment(np.stack([e["image"] for e in examples]), [e["text"].decode() for e in examples])
    reference = np.stack([e["mask"] for e in examples])
    has_target = reference.any((1, 2))
    ious = _ious(predicted, reference)[has_target]
    assert metrics["examples"] == metrics["expressions"] == len(examples)
    assert metrics["miou"] == pytest.approx(ious.mean()) and metrics["precision@0.5"] == pytest.approx((ious >= 0.5).mean())
    assert metrics["no_target_accuracy"] == pytest.approx((~predicted[~has_target].any((1, 2))).mean())
    assert set(metrics["kinds"]) == {"attribute", "relation", "multiple", "no_target"}


def test_export_serves_masks_without_tfmm_and_tflite_keeps_to_builtin_ops(trained, tmp_path):
    folder = trained.runner.export(trained.task, trained.config)
    images = np.stack([e["image"] for e in segment.Segment().load_split(trained.config, "test", DataChecks())
                       .take(3).as_numpy_iterator()])
    texts = ["the red circle", "all green objects", "the object left of the blue square"]
    pngs = [tf.io.encode_png(image).numpy() for image in images]
    served = check_in_fresh_process({"segmenter": (trained.task, "task.segment(inputs['images'], inputs['texts'])",
                                                   {"images": images, "texts": texts})},
                                    tmp_path / "fresh", folder, {"segment": {"image_bytes": pngs, "text": texts}})
    expected = trained.task.segment_details(images, texts)
    for got, mask in zip(served["segment"]["mask_png"], expected["masks"]):
        assert got.startswith("base64:")  # binary outputs come back base64-encoded
        decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(got.removeprefix("base64:")))))
        np.testing.assert_array_equal(decoded > 0, mask.astype(bool))
    np.testing.assert_allclose(served["segment"]["score"], expected["score"], atol=1e-5)
    parity = json.loads((folder / "tflite" / "parity.json").read_text())
    assert parity["segmenter_float32.tflite"]["mask_agreement"] > 0.99
    for path in (folder / "tflite").glob("*.tflite"):
        assert not [op for op in op_names(path.read_bytes()) if op.startswith("CUSTOM") or op == "FlexDelegate"], path


def test_user_folder_is_scored_whole_and_its_bad_row_named(trained, user_folder, tmp_path, capsys):
    root, usable = user_folder
    out = tmp_path / "user.json"
    assert run_cli("eval", "--model", trained.path, "--data", root, "--output", out) == 0
    metrics = json.loads(out.read_text())
    assert metrics["expressions"] == usable and set(metrics["kinds"]) <= {"target", "no_target"}
    assert f"refs.jsonl:{usable + 1}: empty text" in capsys.readouterr().out


def test_predict_plots_and_bad_input_is_one_line(trained, user_folder, tmp_path, capsys):
    root, _ = user_folder
    out, plot = tmp_path / "p.json", tmp_path / "p.png"
    assert run_cli("predict", root / "images" / "0.png", "--text", "the red circle", "--model", trained.path,
                   "--plot", plot, "--output", out) == 0
    result = json.loads(out.read_text())
    assert np.asarray(result["mask"]).shape == (32, 32) and result["pixels"] == int(np.sum(result["mask"]))
    assert_picture(plot)
    assert run_cli("predict", root / "images" / "0.png", "--text", " ", "--model", trained.path) == 2
    assert "text #0 is empty" in capsys.readouterr().err


@pytest.mark.parametrize("setting, message", [
    ("data.augment.flip=true", "data.augment.flip: the segment app cannot honour it"),
    ("data.image_size=30", "data.image_size 30 is not divisible by 4"),
])
def test_settings_it_cannot_honour_are_refused(setting, message, capsys):
    assert run_cli("train", "--set", setting) == 2
    assert message in capsys.readouterr().err
