"""Visual instruction tuning: a small LLaVA-style assistant that answers in free text, over many turns.

`python -m tfmm.apps.assistant` with no subcommand runs the main job: align the projector on caption conversations
(stage 1), instruction-tune on the built-in conversations about `shapes` scenes and easy-VQA images (stage 2),
score every assistant turn of the test split, the held-out phrasings and the official easy-VQA test questions, and
export to `saved_models/assistant/<version>/`. Then `chat IMAGE` talks about an image in the terminal.
"""

import dataclasses
import sys
from pathlib import Path

import tfmm  # noqa: F401  (sets the Keras backend before keras is imported)
from tfmm import cli
from tfmm.apps.assistant_config import AssistantConfig
from tfmm.apps.generate_stages import with_training
from tfmm.apps.model_parts import (
    build_language_model,
    build_tokenizer,
    image_converter,
    language_model_preset,
    language_model_tokenizer,
)
from tfmm.apps.runner import App, Runner
from tfmm.cli import SAMPLING_FLAGS, add_shortcut_arguments
from tfmm.data import DataChecks, build_pipeline, read_image_files
from tfmm.data.conversation_sources import conversations_dataset, load_conversations
from tfmm.data.region_labels import REGION_CLASSES
from tfmm.encoders import build_image_encoder
from tfmm.encoders.pretrained import set_trainable
from tfmm.errors import TfmmError
from tfmm.evaluation.conversation import evaluate_conversations
from tfmm.export.assistant import export_assistant
from tfmm.models import VisualAssistant, VisualAssistantBackbone, VisualAssistantPreprocessor
from tfmm.models.presets import PRESET_DIR
from tfmm.models.visual_assistant_preprocessor import ASSISTANT, USER
from tfmm.train.session import per_worker_batch

ALIGNMENT_DIR = "alignment"  # stage 1's run, inside the instruction-tuning run


class Assistant(App):
    name, description = "assistant", __doc__.splitlines()[0]
    config_class, task_class = AssistantConfig, VisualAssistant
    shortcuts = SAMPLING_FLAGS
    cannot_honour = {"data.augment": "flips and colour jitter change what the answers say (left of, red)",
                     "data.text_augment": "questions and answers are what the model learns to read and write"}
    preprocessor = aligned = None  # set by `train`: one tokenizer for both stages; stage 1's preset

    # ------------------------------------------------------------------------------------- training
    def train(self, runner, config, args=None):
        """Stage 1 (alignment on captions, in `<run>/alignment/`, skipped once done) then stage 2 (instruction
        tuning, starting from stage 1's weights)."""
        run = Path(getattr(args, "run_dir", None) or cli.run_dir(config.train.output_dir, self.name))
        force = getattr(args, "force", False)
        self.preprocessor = self.make_preprocessor(config)
        if self.captions(config) is not None:
            aligned = run / ALIGNMENT_DIR / PRESET_DIR
            if not aligned.is_dir():
                if Runner(Alignment(self)).train(with_training(config, "align_train"), run / ALIGNMENT_DIR, force) is None:
                    return None  # a non-chief worker
            self.aligned = aligned
        return runner.train(config, run, force)

    @staticmethod
    def captions(config):
        """The alignment stage's conversations (a source for `load_conversations`), or None for no stage 1."""
        data = config.data
        if data.captions == "none":
            return None
        if data.captions != "auto":
            return dataclasses.replace(data, source=data.captions)
        if data.source == "shapes":
            return data
        folder = Path(data.source)
        return dataclasses.replace(data, source=str(folder / "captions.json")) \
            if (folder / "captions.json").is_file() else None

    def conversations(self, config, split, checks):
        captions = self.captions(config) if split == "captions" else None
        if split == "captions" and captions.source != "shapes":
            return load_conversations(captions, None, checks)
        return load_conversations(config.data, split, checks)

    def load_split(self, config, split, checks):
        conversations, what = self.conversations(config, split, checks), f"{config.data.source} {split}"
        labelled = config.model.region_loss_weight(config.data) > 0
        unlabelled = [c.id for c in conversations if c.labels is None] if labelled and split != "validation" else []
        if unlabelled:
            raise TfmmError(f"{what}: model.region_weight {config.model.region_weight} needs a label map (\"labels\") "
                            f"on every conversation; {len(unlabelled)} have none (first: {unlabelled[0]!r}); give 0")
        return conversations_dataset(conversations, what, config.data.image_size if labelled else None)

    def make_preprocessor(self, config):
        """One tokenizer for both stages: the preset language model's, or WordPiece learnt from both stages' text."""
        m, quiet = config.model, DataChecks(strict=config.data.strict, log=lambda _: None)
        if m.language_model.preset:
            tokenizer = language_model_tokenizer(m.language_model.preset)  # the weights load in build_task
        else:
            splits = ["train"] + (["captions"] if self.captions(config) is not None else [])
            texts = [text for split in splits for c in self.conversations(config, split, quiet)
                     for turn in c.turns for text in turn]
            texts += [f"{USER} {ASSISTANT}"] * 100  # the role words every prompt has: whole tokens
            tokenizer = build_tokenizer(m, lambda: texts, config.data.source)
        return VisualAssistantPreprocessor(tokenizer, image_converter(config), m.sequence_length)

    def build_preprocessor(self, config, train_examples):
        return self.preprocessor

    def build_task(self, config, preprocessor, stage="instructions"):
        m, lm = config.model, config.model.language_model
        image_encoder = build_image_encoder(m.image_encoder, config.data.image_size)
        regions = image_encoder.output["sequence_output"].shape[1]
        if lm.preset:
            language_model = language_model_preset(lm.preset, lm.family)
        else:
            language_model = build_language_model(lm, preprocessor.vocabulary_size,
                                                  regions // m.merge_regions ** 2 + m.sequence_length)
        region_weight = m.region_loss_weight(config.data)
        backbone = VisualAssistantBackbone(image_encoder, language_model, REGION_CLASSES if region_weight else (),
                                           merge_regions=m.merge_regions, image_positions=m.image_positions)
        task = VisualAssistant(backbone, preprocessor, max_reply_length=m.max_reply_length,
                               region_weight=region_weight, name="assistant")
        if stage == "alignment":  # LLaVA's stage 1: pretrained parts stay as they are, the projector learns
            image_encoder.trainable = not m.image_encoder.weights
            language_model.trainable = not lm.preset
            return task
        if self.aligned is not None:
            task.backbone.load_weights(self.aligned / "model.weights.h5")  # a preset holds the backbone's
        if lm.lora_rank:
            set_trainable(language_model, ("lora", lm.lora_rank))
        return task

    def pipeline(self, config, examples, training, shard=None, repeat=False):
        """Batches of raw `{"images", "questions", "answers"}` (turns as (B, T) strings), with `{"labels"}` as the
        target where the conversations have label maps for the region loss."""
        def pick(example, seed):
            del seed
            x = {"images": example["image"], "questions": example["questions"], "answers": example["answers"]}
            return (x, {"labels": example["labels"]}) if "labels" in example else x

        return build_pipeline(examples, per_worker_batch(config.data.batch_size, shard), training=training,
                              example_fn=pick, cache=config.data.cache, shuffle_buffer=config.data.shuffle_buffer,
                              seed=config.train.seed, shard=shard, repeat=repeat)

    # ------------------------------------------------------------------------------- using the model
    def evaluate(self, task, config, split, args=None):
        """Exact match of every assistant turn of `split` (or of the LLaVA file `--data` names, read whole)."""
        checks = DataChecks(strict=config.data.strict)
        file = getattr(args, "data", None)
        conversations = load_conversations(dataclasses.replace(config.data, source=file), None, checks) if file \
            else self.conversations(config, split, checks)
        if not conversations:
            raise TfmmError(f"{file or split}: no usable conversations to score")
        return {**evaluate_conversations(task, conversations, progress=True), "split": file or split}

    def report(self, title, metrics):
        super().report(title, {k: metrics[k] for k in ("exact_match", "examples", "conversations") if k in metrics})
        for group in ("intents", "turn_index"):
            shown = ", ".join(f"{k} {v['exact_match']:.3f} ({v['turns']})" for k, v in metrics.get(group, {}).items())
            print(f"    by {group.replace('_', ' ')}: {shown}")

    def main_report(self, runner, task, config):
        self.report("test split", self.evaluate(task, config, "test"))
        if config.data.source == "shapes":
            self.report("held-out phrasings (test scenes)", self.evaluate(task, config, "phrasing"))
            self.report("official easy-VQA test questions", self.evaluate(task, config, "easy_vqa_test"))

    def export_samples(self, config, checks):
        conversations = self.conversations(config, "validation", checks)[:config.export.representative_examples]
        return {"images": read_image_files([c.image for c in conversations]),
                "histories": [list(c.turns[:-1]) for c in conversations],
                "questions": [c.turns[-1][0] for c in conversations]}

    def export(self, task, config, samples, base_dir, name, quantizations):
        return export_assistant(task, config, samples, base_dir, name, quantizations)

    def sampling(self, config, args):
        s = config.sampling
        return dict(temperature=s.temperature, top_k=s.top_k, top_p=s.top_p, seed=s.seed) if args.sample else {}

    def predict(self, task, config, args):
        reply = task.reply(read_image_files([args.image]), [[]], [args.question], **self.sampling(config, args))[0]
        print(reply)
        return {"image": args.image, "question": args.question, "reply": reply}

    def chat(self, runner, args):
        """A conversation about one image in the terminal (or over lines on stdin): an empty line or EOF ends it."""
        task, config, path = runner.load(args)
        image, history = read_image_files([args.image]), []
        print(f"chatting about {args.image} with {path}; an empty line ends", file=sys.stderr)
        for line in sys.stdin if not sys.stdin.isatty() else iter(lambda: input("you: "), ""):
            question = line.strip()
            if not question:
                break
            reply = task.reply(image, [history], [question], **self.sampling(config, args))[0]
            print(f"assistant: {reply}", flush=True)
            history.append((question, reply))

    def add_eval_arguments(self, parser):
        parser.add_argument("--split", default="test",
                            help="test, validation, or with the built-in set also phrasing and easy_vqa_test")
        parser.add_argument("--data", help="score a LLaVA-format conversation .json file instead")

    def add_predict_arguments(self, parser):
        parser.add_argument("image")
        parser.add_argument("question")
        _add_sampling_arguments(parser)

    def add_commands(self, runner, app_parser):
        chat = app_parser.command("chat", lambda args: self.chat(runner, args), "talk about an image in the terminal")
        chat.add_argument("image")
        _add_sampling_arguments(chat)


def _add_sampling_arguments(parser):
    add_shortcut_arguments(parser, SAMPLING_FLAGS)
    parser.add_argument("--sample", action="store_true", help="sample (--temperature, --top-k, ...) instead of greedy")


class Alignment(Assistant):
    """Stage 1: the assistant's captions, its run inside the instruction-tuning run, no validation split."""

    name = "assistant_alignment"

    def __init__(self, assistant):
        self.preprocessor = assistant.preprocessor

    def load_split(self, config, split, checks):
        return super().load_split(config, "captions", checks)

    def has_validation(self, config):
        return False

    def build_task(self, config, preprocessor, stage="alignment"):
        return super().build_task(config, preprocessor, stage)


def main(argv=None):
    return Runner(Assistant()).main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
