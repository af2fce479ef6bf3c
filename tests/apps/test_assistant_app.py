"""The assistant app end to end on a tiny config: both training stages, eval against a recount of every turn, the
export's `chat` signature without tfmm and over REST/gRPC, the TFLite loop against Keras, chat and predict on the
command line, a language model from a local keras-hub preset with LoRA, and refusals."""

import base64
import dataclasses
import io
import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfmm.apps import assistant
from tfmm.data import DataChecks
from tfmm.data.conversations import Conversation, read_conversations, write_conversations
from tfmm.data.instructions import normalise_answer
from tfmm.data.region_labels import REGION_CLASSES
from tfmm.errors import TfmmError
from tfmm.export.tflite import op_names
from tfmm.models import from_preset
from tfmm.testing import check_in_fresh_process, train_app


def run_cli(*argv):
    return assistant.main([str(a) for a in argv])


def tiny_config(out):
    config = assistant.AssistantConfig()
    config.data.shapes_config, config.data.image_size, config.data.batch_size = "tiny", 32, 16
    config.data.data_dir, config.data.easy_vqa = str(out / "data"), False
    config.model.image_encoder.size = "tiny"
    lm = config.model.language_model
    lm.num_layers, lm.hidden_dim, lm.num_heads, lm.intermediate_dim = 1, 32, 2, 64
    config.model.sequence_length, config.model.max_reply_length = 48, 12
    config.train.epochs, config.align_train.epochs = 2, 1
    config.train.output_dir = config.align_train.output_dir = str(out)
    config.export.base_dir, config.export.representative_examples = str(out / "saved_models"), 6
    return config


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return train_app(assistant.Assistant(), tiny_config(tmp_path_factory.mktemp("assistant")))


def _test_conversations(trained, split="test"):
    return assistant.Assistant().conversations(trained.config, split, DataChecks())


def test_stage_two_starts_from_the_aligned_weights(trained):
    aligned = trained.path / assistant.ALIGNMENT_DIR / "preset"
    assert (aligned / "task.json").is_file() and (trained.path / "alignment" / "config.toml").is_file()
    app = assistant.Assistant()
    app.aligned = aligned
    task = app.build_task(trained.config, trained.task.preprocessor)
    for got, want in zip(task.backbone.weights, from_preset(aligned).backbone.weights):
        np.testing.assert_array_equal(got.numpy(), want.numpy(), err_msg=got.path)
    # and the trained model moved away from them
    assert any(not np.array_equal(a.numpy(), b.numpy()) for a, b in zip(trained.task.backbone.weights, task.backbone.weights))


def test_eval_json_matches_a_recount_of_every_turn(trained, tmp_path):
    out = tmp_path / "eval.json"
    assert run_cli("eval", "--model", trained.path, "--output", out) == 0
    metrics = json.loads(out.read_text())
    hits, by_intent = [], {}
    for conversation in _test_conversations(trained):
        image = conversation.image.read_bytes()
        for turn, ((question, answer), intent) in enumerate(zip(conversation.turns, conversation.intents)):
            reply = trained.task.reply([image], [list(conversation.turns[:turn])], [question])[0]
            hit = normalise_answer(reply) == normalise_answer(answer)
            hits.append(hit)
            by_intent.setdefault(intent, []).append(hit)
    assert metrics["examples"] == metrics["turns"] == len(hits)
    assert metrics["exact_match"] == pytest.approx(np.mean(hits))
    assert {k: v["exact_match"] for k, v in metrics["intents"].items()} == pytest.approx(
        {k: np.mean(v) for k, v in by_intent.items()})


def test_eval_data_scores_a_llava_file_and_names_its_bad_record(trained, tmp_path, capsys):
    conversations = _test_conversations(trained)[:3]
    path = write_conversations(conversations, tmp_path / "mine.json")
    records = json.loads(path.read_text())
    records.append({"id": "broken", "image": records[0]["image"], "conversations": [{"from": "human", "value": "hi"}]})
    path.write_text(json.dumps(records))
    out = tmp_path / "mine_eval.json"
    assert run_cli("eval", "--model", trained.path, "--data", path, "--output", out) == 0
    assert json.loads(out.read_text())["turns"] == sum(len(c.turns) for c in conversations)
    assert f"{path}: record 3 (id 'broken')" in capsys.readouterr().out


@pytest.fixture(scope="module")
def exported(trained):
    return trained.runner.export(trained.task, trained.config)


def _requests(trained):
    conversation = _test_conversations(trained)[0]
    image = conversation.image.read_bytes()
    history = list(conversation.turns[:2])
    return [image, image], [history, []], ["how many shapes are there?", "what colour is the circle?"]


def test_chat_signature_replies_as_keras_without_tfmm(trained, exported, tmp_path):
    images, histories, questions = _requests(trained)
    table = [[text for pair in histories[0] for text in pair], ["", "", "", ""]]
    served = check_in_fresh_process({}, tmp_path / "fresh", exported,
                                    {"chat": {"image_bytes": images, "history": table, "question": questions}})
    assert served["chat"]["reply"] == trained.task.reply(images, histories, questions)
    assert served["chat"]["turns_dropped"] == trained.task.prompt_ids(histories, questions)[1]


def test_tflite_loop_replies_as_keras_with_builtin_ops_only(trained, exported, tmp_path):
    folder = exported / "tflite"
    parity = json.loads((folder / "parity.json").read_text())
    assert parity["float32"]["reply_agreement"] == 1.0 and parity["float32"]["replies"] == 6
    for path in folder.glob("*.tflite"):
        assert not [op for op in op_names(path.read_bytes()) if op.startswith("CUSTOM") or op == "FlexDelegate"], path
    # the on-device tokenizer against the model's own (keras-hub WordPiece), on every training question and answer
    sys.path.insert(0, str(folder))
    try:
        from assistant_on_device import OnDeviceAssistant
    finally:
        sys.path.remove(str(folder))
    device = OnDeviceAssistant(folder)
    texts = sorted({t for c in _test_conversations(trained, "train") for turn in c.turns for t in turn})
    texts += ["Ünïcode — and a zebra!", "user: assistant:"]
    expected = trained.task.preprocessor.tokenizer(texts)
    assert [device.tokenizer(t) for t in texts] == expected
    # the script runs in a process without tfmm or TensorFlow
    image = _test_conversations(trained)[0].image
    result = subprocess.run([sys.executable, "-c", "import sys, runpy; sys.argv = sys.argv[1:]; "
                             "runpy.run_path(sys.argv[0], run_name='__main__'); "
                             "assert 'tensorflow' not in sys.modules and 'tfmm' not in sys.modules",
                             str(folder / "assistant_on_device.py"), str(image), "how many shapes are there?"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    pixels = trained.task.preprocessor.convert_images([image.read_bytes()]).numpy()[0]
    assert result.stdout.strip() == device.reply(pixels, [], "how many shapes are there?")


def test_chat_is_served_over_rest_and_grpc_by_tfmm_serving(trained, exported, tmp_path):
    import grpc
    import httpx
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from tests.serving.conftest import serving

    images, histories, questions = _requests(trained)
    table = [[text for pair in histories[0] for text in pair], ["", "", "", ""]]
    expected = trained.task.reply(images, histories, questions)
    with serving("assistant", exported.parent, tmp_path) as server:
        body = {"signature_name": "chat", "instances": [
            {"image_bytes": {"b64": base64.b64encode(i).decode()}, "history": h, "question": q}
            for i, h, q in zip(images, table, questions)]}
        with httpx.Client(base_url=f"http://127.0.0.1:{server.rest_port}", timeout=120) as client:
            response = client.post("/v1/models/assistant:predict", json=body)
            assert response.status_code == 200, response.text
            rest = [p["reply"] for p in response.json()["predictions"]]
            empty = {"signature_name": "chat", "instances": [{**body["instances"][0], "question": "  "}]}
            bad = client.post("/v1/models/assistant:predict", json=empty)
            assert bad.status_code == 400 and "a question is empty" in bad.text
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            request = predict_pb2.PredictRequest()
            request.model_spec.name, request.model_spec.signature_name = "assistant", "chat"
            request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto(images, dtype=tf.string))
            request.inputs["history"].CopyFrom(tf.make_tensor_proto(table, dtype=tf.string))
            request.inputs["question"].CopyFrom(tf.make_tensor_proto(questions, dtype=tf.string))
            outputs = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=120).outputs
            grpc_replies = [r.decode() for r in tf.make_ndarray(outputs["reply"])]
    assert rest == grpc_replies == expected


def test_chat_and_predict_on_the_command_line(trained, monkeypatch, capsys, tmp_path):
    image = _test_conversations(trained)[0].image
    questions = ["describe the image.", "how many shapes are there?", "and what colour is it?"]
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(questions) + "\n\nnot asked\n"))
    assert run_cli("chat", image, "--model", trained.path) == 0
    said = [line.removeprefix("assistant: ") for line in capsys.readouterr().out.splitlines()
            if line.startswith("assistant: ")]
    history, expected = [], []
    for question in questions:  # each reply sees the conversation so far, the model's own replies included
        expected.append(trained.task.reply([image.read_bytes()], [history], [question])[0])
        history = history + [(question, expected[-1])]
    assert said == expected
    out = tmp_path / "p.json"
    assert run_cli("predict", image, questions[1], "--model", trained.path, "--output", out) == 0
    alone = trained.task.reply([image.read_bytes()], [[]], [questions[1]])[0]  # predict asks with no history
    assert json.loads(out.read_text())["reply"] == alone
    assert run_cli("predict", image, " ", "--model", trained.path) == 2
    assert "question #0 is empty" in capsys.readouterr().err


@pytest.mark.parametrize("setting, message", [
    ("data.augment.flip=true", "data.augment.flip: the assistant app cannot honour it"),
    ("model.max_reply_length=80", "model.max_reply_length 80 leaves no room"),
    ("model.language_model.preset=somewhere", "the TFLite loop tokenizes with WordPiece"),
    ("align_train.output_dir=elsewhere", "stage 1 writes its run inside stage 2's"),
    ("model.merge_regions=3", "model.merge_regions 3 must divide the side of the image encoder's square grid"),
])
def test_settings_it_cannot_honour_are_refused(setting, message, capsys):
    assert run_cli("train", "--set", setting) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("family", ["gpt2", "gemma"])
def test_a_language_model_from_a_local_preset_with_lora(family, trained, tmp_path):
    import keras
    import keras_hub

    from tfmm.testing.keras_hub_presets import save_tiny_causal_lm

    words = sorted({w for c in _test_conversations(trained, "train") for t in c.turns for s in t for w in s.split()})
    preset = save_tiny_causal_lm(tmp_path / family, family, words + ["user:", "assistant:"])
    config = tiny_config(tmp_path)
    config.model.language_model.preset, config.model.language_model.family = str(preset), family
    config.model.language_model.lora_rank, config.export.tflite = 2, False
    app = assistant.Assistant()
    app.preprocessor = app.make_preprocessor(config)
    reference = keras_hub.models.Backbone.from_preset(str(preset))
    assert app.preprocessor.tokenizer.get_vocabulary() == keras_hub.tokenizers.Tokenizer.from_preset(str(preset)).get_vocabulary()
    task = app.build_task(config, app.preprocessor)
    language_model = task.backbone.language_model.backbone
    loaded = {v.path: v for v in language_model.weights}
    for want in reference.weights:  # the preset's weights (LoRA's adapters come on top)
        np.testing.assert_array_equal(loaded[want.path].numpy(), want.numpy(), err_msg=want.path)
    trainable = {v.path for v in language_model.trainable_variables}
    # keras' LoRA: the adapted query/value layers train their adapters (and biases), every other weight is frozen
    assert trainable and all("lora" in p or p.endswith(("query/bias", "value/bias")) for p in trainable)
    assert any("lora" in p for p in trainable)
    assert task.backbone.projector.trainable_variables and task.backbone.image_encoder.trainable_variables
    aligned = app.build_task(config, app.preprocessor, stage="alignment")
    assert not aligned.backbone.language_model.backbone.trainable_variables  # stage 1 keeps the preset LM as it is
    if family != "gpt2":
        return  # one family is enough for the fit step below (Gemma's cached decoding: test_prefix_language_model)
    # one step of instruction tuning changes the adapters and not the frozen kernels
    conversation = _test_conversations(trained, "train")[0]
    batch = {"images": [conversation.image.read_bytes()], "questions": [[conversation.turns[0][0]]],
             "answers": [[conversation.turns[0][1]]]}
    frozen = {v.path: v.numpy().copy() for v in language_model.non_trainable_variables
              if "seed_generator" not in v.path}  # dropout's random state moves by design
    task.compile(optimizer=keras.optimizers.Adam(1e-2))
    labels = {"labels": np.asarray(Image.open(conversation.labels))[None]}  # the region target trains its head too
    task.fit(tf.data.Dataset.from_tensor_slices((batch, labels)).batch(1), epochs=1, verbose=0)
    moved = [p for p, value in frozen.items() if not np.array_equal(_variable(language_model, p), value)]
    assert not moved, moved
    reply = task.reply([conversation.image.read_bytes()], [[]], [conversation.turns[0][0]])
    assert isinstance(reply[0], str)


def _variable(model, path):
    return next(v.numpy() for v in model.weights if v.path == path)


def test_the_built_in_set_is_read_and_a_user_folder_carves_validation_and_test(trained, tmp_path):
    conversations = _test_conversations(trained, "train")
    folder = tmp_path / "user"
    write_conversations(conversations, folder / "train.json")
    config = tiny_config(tmp_path)
    config.data.source = str(folder)
    splits = {s: assistant.Assistant().conversations(config, s, DataChecks()) for s in ("train", "validation", "test")}
    ids = [c.id for s in splits.values() for c in s]
    assert sorted(ids) == sorted(c.id for c in conversations) and len(set(ids)) == len(ids)
    assert splits["validation"] and splits["test"] and splits["train"]
    assert assistant.Assistant.captions(config) is None  # no captions.json: no alignment stage
    single = read_conversations(folder / "train.json", DataChecks())
    assert all(isinstance(c, Conversation) for c in single)
    # the region target: on by default on the built-in set only; asked for, every training conversation needs a map
    assert trained.task.region_weight == 1.0 and trained.task.backbone.region_classes == REGION_CLASSES
    assert config.model.region_loss_weight(config.data) == 0
    config.model.region_weight = 0.5
    assert assistant.Assistant().load_split(config, "train", DataChecks()).element_spec["labels"].shape == (32, 32, 3)
    write_conversations([dataclasses.replace(c, labels=None) for c in conversations], folder / "train.json")
    first, count = splits["train"][0].id, len(splits["train"])
    with pytest.raises(TfmmError, match=rf"region_weight 0.5 needs a label map .*; {count} have none \(first: '{first}'\)"):
        assistant.Assistant().load_split(config, "train", DataChecks())
