"""The segment app end to end on a tiny config: built-in data, evaluation against a NumPy count, export served in
a fresh process without tfmm, TFLite with parity, the user format, predict, and refusals."""

import base64
import dataclasses
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
from tfmm.testing import assert_picture, check_in_fresh_process, record_calls, train_app


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


@pytest.fixture(scope="module")
def exported(trained):
    return trained.runner.export(trained.task, trained.config)


def test_export_serves_masks_without_tfmm_and_tflite_keeps_to_builtin_ops(trained, exported, tmp_path):
    folder = exported
    images = np.stack([e["image"] for e in segment.Segment().load_split(trained.config, "test", DataChecks())
                       .take(3).as_numpy_iterator()])
    texts = ["the red circle", "all green objects", "the object left of the blue square"]
    pngs = [tf.io.encode_png(image).numpy() for image in images]
    served = check_in_fresh_process({"segmenter": (trained.task, "task.segment(inputs['images'], inputs['texts'])",
                                                   {"images": images, "texts": texts})},
                                    tmp_path / "fresh", folder, {"segment": {"image_bytes": pngs, "text": texts}})
    expected = trained.task.segment_details(images, texts)
    for got, mask in zip(served["segment"]["mask_png_bytes"], expected["masks"]):
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
    ("data.image_size=30", "data.image_size 30 is not divisible by 16"),
    ("model.word_attention_levels=6", "model.word_attention_levels 6: give 1 to 5 for film (the U-Net's levels"),
    ("model.shape_weight=0.5 data.source=easy_vqa", "model.shape_weight 0.5: only the built-in data"),
    ("model.colour_weight=0.5 data.source=easy_vqa", "model.colour_weight 0.5: only the built-in data"),
    ("model.attribute_maps=true model.colour_weight=0", "model.attribute_maps needs the shape and colour targets"),
    ("model.attribute_maps=true data.source=easy_vqa", "model.attribute_maps needs the shape and colour targets"),
    ("model.attribute_fit=true model.attribute_maps=false", "model.attribute_fit reads the attribute maps, which are off"),
    ("model.attribute_fit=true data.source=easy_vqa", "model.attribute_fit reads the attribute maps, which are off here "
                                                      "(model.attribute_maps 'auto' for data.source 'easy_vqa')"),
    ("model.attribute_maps=yes", 'model.attribute_maps must be true, false or "auto", got \'yes\''),
])
def test_settings_it_cannot_honour_are_refused(setting, message, capsys):
    assert run_cli("train", *(a for s in setting.split() for a in ("--set", s))) == 2
    assert message in capsys.readouterr().err


def test_a_transformer_u_net_that_would_not_hear_the_words_is_refused(capsys):
    assert run_cli("train", "--set", "model.conditioning=cross_attention", "--set", "model.word_attention_levels=0") == 2
    assert "model.word_attention_levels 0: give 1 to 5 for cross_attention" in capsys.readouterr().err


def _png_mask(data):
    return np.asarray(Image.open(io.BytesIO(data))) > 0


def test_the_export_is_served_over_rest_and_grpc_by_tfmm_serving(trained, exported, user_folder, tmp_path):
    import grpc
    import httpx
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from tests.serving.conftest import serving

    root, _ = user_folder
    images = [(root / "images" / f"{i}.png").read_bytes() for i in range(2)]
    texts = ["the red circle", "all the squares"]
    expected = trained.task.segment_details(images, texts)
    with serving("segment", exported.parent, tmp_path) as server:
        body = {"signature_name": "segment",
                "instances": [{"image_bytes": {"b64": base64.b64encode(i).decode()}, "text": t} for i, t in zip(images, texts)]}
        with httpx.Client(base_url=f"http://127.0.0.1:{server.rest_port}", timeout=60) as client:
            response = client.post("/v1/models/segment:predict", json=body)
            assert response.status_code == 200, response.text
            rest = response.json()["predictions"]
            bad = client.post("/v1/models/segment:predict", json={"instances": [{**body["instances"][0], "text": ["a", "b"]}]})
            assert bad.status_code == 400
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            request = predict_pb2.PredictRequest()
            request.model_spec.name, request.model_spec.signature_name = "segment", "segment"
            request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto(images, dtype=tf.string))
            request.inputs["text"].CopyFrom(tf.make_tensor_proto(texts, dtype=tf.string))
            outputs = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=60).outputs
            grpc_masks = tf.make_ndarray(outputs["mask_png_bytes"])
            grpc_scores = tf.make_ndarray(outputs["score"])
    for index, mask in enumerate(expected["masks"]):
        np.testing.assert_array_equal(_png_mask(base64.b64decode(rest[index]["mask_png_bytes"]["b64"])), mask.astype(bool))
        np.testing.assert_array_equal(_png_mask(grpc_masks[index]), mask.astype(bool))
    np.testing.assert_allclose([r["score"] for r in rest], expected["score"], atol=1e-5)
    np.testing.assert_allclose(grpc_scores, expected["score"], atol=1e-5)
    np.testing.assert_allclose(rest[0]["probabilities"], expected["probabilities"][0], atol=1e-5)


def test_an_expression_longer_than_the_sequence_is_truncated_with_one_warning(trained, capsys):
    task = trained.task
    length = task.preprocessor.sequence_length
    long_text = " ".join(["the red circle"] * length)
    fits = "the red circle"
    assert task.preprocessor.overlong([fits, long_text]) == [long_text]
    # A reader of the tokens: the packer keeps start, the first sequence_length − 2 word tokens, then end.
    ids = task.preprocessor.packing_ids()
    words = task.preprocessor.tokenize_numpy([fits])["token_ids"][0]
    phrase = [int(t) for t in words[1:] if t not in (ids["end_value"], ids["pad_value"])]
    packed = task.preprocessor.tokenize_numpy([long_text])["token_ids"][0]
    expected = [ids["start_value"], *(phrase * length)[:length - 2], ids["end_value"]]
    np.testing.assert_array_equal(packed, expected)
    # The boundary: a one-token word repeated to fill the room exactly is not cut; one more is.
    full, over = " ".join(["the"] * (length - 2)), " ".join(["the"] * (length - 1))
    assert task.preprocessor.overlong([full, over]) == [over]
    task.preprocessor._overlong_warned = False
    task.segment(np.zeros((2, 32, 32, 3), np.uint8), [long_text, fits])
    task.segment(np.zeros((1, 32, 32, 3), np.uint8), [long_text])
    err = capsys.readouterr().err
    assert err.count("longer than sequence_length") == 1 and f"1 text(s) longer than sequence_length {length}" in err


def test_user_data_in_easy_vqa_layout_is_scored_whole(trained, tmp_path):
    from tfmm.data import easy_vqa
    from tfmm.data.referring_easy_vqa import easy_vqa_referring

    easy_vqa.generate(tmp_path / "fresh", 8, seed=11)
    out = tmp_path / "easy.json"
    assert run_cli("eval", "--model", trained.path, "--data", tmp_path / "fresh", "--output", out) == 0
    metrics = json.loads(out.read_text())
    examples = easy_vqa_referring(str(tmp_path / "fresh"), None, 0.1, DataChecks(), 32)
    assert metrics["expressions"] == len(examples) == 48
    assert metrics["kinds"]["no_target"]["expressions"] == 16


class _FixedMask:
    """A segmenter that marks one known region: the oracle for which token cells an edit may change."""

    def __init__(self, mask):
        self.mask = mask

    def segment(self, images, texts):
        return self.mask[None]


def test_edit_where_redraws_only_the_cells_under_the_named_region(trained, user_folder, tmp_path, monkeypatch, capsys):
    from tfmm.apps import generate
    from tfmm.models.region_editing import edit_where
    from tfmm.testing import tiny_tasks

    generator = tiny_tasks.generator()  # 16 px, a 4×4 token grid; untrained: what is kept is the oracle
    root, _ = user_folder
    image = (root / "images" / "0.png").read_bytes()
    original = generator.encode([image])[0]
    mask = np.zeros((32, 32), np.uint8)
    mask[3:5, 20:30] = 1  # rows of cell 0, columns of cells 2 and 3 (8 px per cell at 32 px)
    decoded = record_calls(monkeypatch, generator, "decode")
    edited, info = edit_where(generator, _FixedMask(mask), image, "the thing", "a green square", candidates=2)
    redrawn = np.zeros((4, 4), bool)
    redrawn[0, 2:] = True
    np.testing.assert_array_equal(info["redrawn"], redrawn)
    np.testing.assert_array_equal(decoded[0][0][~redrawn], original[~redrawn])
    assert edited.shape == (16, 16, 3) and info["cells"] == 2
    with pytest.raises(Exception, match="names nothing in this image"):
        edit_where(generator, _FixedMask(np.zeros((32, 32), np.uint8)), image, "the purple star", "a green square")

    # The command line, with the trained segmenter: it redraws the cells the segmenter's own mask marks.
    generator.save_to_preset(str(tmp_path / "generator"))
    where = "the red circle"
    marked = generator.mask_cells(trained.task.segment([image], [where])[0])
    code = generate.main(["edit", str(root / "images" / "0.png"), "--where", where, "--segmenter", str(trained.path),
                          "--to", "a blue star", "--model", str(tmp_path / "generator"), "--output", str(tmp_path / "e.png")])
    captured = capsys.readouterr()
    if marked.any():
        assert code == 0 and f"re-sampled {int(marked.sum())} of 16 tokens" in captured.out
        assert Image.open(tmp_path / "e.png").size == (16, 16)
    else:
        assert code == 2 and "names nothing in this image" in captured.err
    assert generate.main(["edit", str(root / "images" / "0.png"), "--where", where, "--to", "x",
                          "--model", str(tmp_path / "generator")]) == 2
    assert "--where needs --segmenter" in capsys.readouterr().err


def test_a_text_encoder_the_retrieval_app_saved_starts_the_segmenter(trained, tmp_path):
    """Transfer: `model.text_encoder.weights` names the preset `retrieval save-presets` writes (encoder +
    WordPiece vocabulary); the segmenter starts from exactly those weights and that vocabulary."""
    from tfmm.encoders import build_text_encoder, text_encoder_options
    from tfmm.text import WordPieceTokenizer

    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "red", "circle", "all", "green", "objects"]
    encoder = build_text_encoder(text_encoder_options("transformer", size="tiny"), len(vocabulary), 16)
    encoder.save_to_preset(str(tmp_path / "text_encoder"))
    WordPieceTokenizer(vocabulary=vocabulary).save_to_preset(str(tmp_path / "text_encoder"))
    config = dataclasses.replace(trained.config, model=dataclasses.replace(
        trained.config.model, text_encoder=text_encoder_options("transformer", size="tiny",
                                                                 weights=str(tmp_path / "text_encoder"))))
    app = segment.Segment()
    preprocessor = app.build_preprocessor(config, app.load_split(config, "train", DataChecks()))
    task = app.build_task(config, preprocessor)
    assert preprocessor.vocabulary == vocabulary
    for got, saved in zip(task.backbone.text_encoder.weights, encoder.weights):
        np.testing.assert_array_equal(got.numpy(), saved.numpy())


def test_attribute_fit_matches_the_class_names_first_pieces_in_the_vocabulary(capsys):
    """The ids `model.attribute_fit` looks for: each class's words as the vocabulary spells them ("crosses" →
    "cross" ##es: the id of "cross"); a vocabulary without a class's word is refused by name under `true`, and
    turns an "auto" fit off with a warning."""
    from tfmm.apps.segment import Segment, SegmentDataConfig, SegmentModelConfig
    from tfmm.errors import TfmmError
    from tfmm.text import WordPieceTokenizer

    vocabulary = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]", "the", "circle", "##s", "cross", "##es", "square",
                  "triangle", "star", "red", "green", "blue", "yellow", "purple", "white"]
    model, data = SegmentModelConfig(attribute_maps=True, attribute_fit=True), SegmentDataConfig()
    words = Segment.attribute_words(model, data, WordPieceTokenizer(vocabulary=vocabulary))
    v = vocabulary.index
    assert words == {"shape": [[], *([v(s)] for s in ("circle", "square", "triangle", "star", "cross"))],
                     "colour": [[], *([v(c)] for c in ("red", "green", "blue", "yellow", "purple", "white"))]}
    assert Segment.attribute_words(SegmentModelConfig(attribute_fit=False), data,
                                   WordPieceTokenizer(vocabulary=vocabulary)) is None
    without_purple = WordPieceTokenizer(vocabulary=[v for v in vocabulary if v != "purple"])
    with pytest.raises(TfmmError, match="the vocabulary has no token for purple"):
        Segment.attribute_words(model, data, without_purple)
    assert Segment.attribute_words(SegmentModelConfig(), data, without_purple) is None
    assert 'model.attribute_fit "auto" is off: the vocabulary has no token for purple' in capsys.readouterr().err


@pytest.mark.parametrize("settings, maps, fit", [
    ([], True, True),
    (["data.source=easy_vqa"], False, False),
    (["model.colour_weight=0"], False, False),
    (["model.filters=[8]"], False, False),
    (["model.attribute_fit=false"], True, False),
    (["model.attribute_maps=false"], False, False),
    (["data.source=easy_vqa", "model.attribute_maps=false", "model.attribute_fit=false"], False, False),
])
def test_auto_attribute_options_are_on_where_the_data_has_both_class_maps(settings, maps, fit):
    """ "auto" (the default) turns the attribute maps and the matched words on for the built-in shapes, which has
    each pixel's shape and colour, and off where a class map or the decoder is missing."""
    from tfmm.apps.segment import SegmentConfig
    from tfmm.config import load_config

    config = load_config(SegmentConfig, overrides=settings)
    assert (config.model.uses_attribute_maps(config.data), config.model.uses_attribute_fit(config.data)) == (maps, fit)


def test_the_default_model_on_shapes_is_built_with_the_maps_and_the_class_words_of_its_vocabulary(trained):
    backbone, vocabulary = trained.task.backbone, trained.task.preprocessor.vocabulary
    assert backbone.attribute_maps
    assert [[vocabulary[i] for i in ids] for ids in backbone.attribute_words["colour"]] == \
        [[], ["red"], ["green"], ["blue"], ["yellow"], ["purple"], ["white"]]
