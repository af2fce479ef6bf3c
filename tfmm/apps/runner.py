"""One runner for every app: config, training, loading a trained model, eval, export, predict, the main job.

An app is a subclass of `App` that supplies its config class, its data (`load_split`, `pipeline`),
how to build its preprocessor and task, and its evaluation, prediction and export; `Runner(app).main()`
gives it the command line:

    python -m tfmm.apps.<app>                      # main job: train, evaluate on the test split, export
    python -m tfmm.apps.<app> train [--run-dir DIR] [--config FILE] [--set section.key=value ...]
    python -m tfmm.apps.<app> eval    [--model PATH] [--split test] [--output metrics.json]
    python -m tfmm.apps.<app> predict [--model PATH] ... [--output result.json]
    python -m tfmm.apps.<app> export  [--model PATH] [--name NAME]

`--model` takes a preset or a run directory (default: the latest run). A trained model fixes its own
model section and image size: `--set model.…` on it is an error, and the data are read at its image size.
"""

import dataclasses
from pathlib import Path

from tfmm import cli
from tfmm.config import given_keys, load_config, read_toml
from tfmm.data import DataChecks
from tfmm.data.pipeline import with_known_length
from tfmm.errors import TfmmError
from tfmm.models.presets import PRESET_DIR, from_preset, preset_path
from tfmm.train.session import TrainingSession, count_examples, prepare_run_dir

# Why an app without class targets refuses MixUp/CutMix (tfmm.data.mixing), for its `cannot_honour`.
MIXING_REFUSED = "mixing two images needs a loss over class labels; of the apps, classify has one"


class App:
    """What an app supplies; the runner does the rest. See the subclasses in `tfmm/apps/`."""

    name = None
    description = None
    config_class = None
    task_class = None
    model_sections = ("model",)  # config sections a trained model fixes
    cannot_honour = {}  # config key (or section) -> why this app refuses it, rather than ignore it

    # ---- data and model
    source = None  # (data config, split, image check) -> raw examples, for apps whose loader takes those

    def load_split(self, config, split, checks):
        """The raw examples of `split` as a `tf.data.Dataset`."""
        return type(self).source(config.data, split, checks.images)

    def build_preprocessor(self, config, train_examples):
        raise NotImplementedError

    def build_task(self, config, preprocessor):
        raise NotImplementedError

    def ready_made_task(self, config):
        """(task, where it came from) when the config names a model usable untrained (retrieval's
        `model.preset`), for eval/predict/export without --model; else None."""
        return None

    def pipeline(self, config, examples, training, shard=None, repeat=False):
        """Batches of raw `(x, y, sample_weight)` for `task.fit`, whose preprocessor maps them."""
        raise NotImplementedError

    def example_count(self, config, train_examples):
        return count_examples(train_examples)

    def has_validation(self, config):
        return True

    def learning_rate_multipliers(self, config):
        return None

    def check_config(self, config):
        """Raises on settings this app cannot honour together (after `cannot_honour`, which refuses single keys)."""

    def train(self, runner, config, args=None):
        """How the app's `train` command and main job train (default: `runner.train`)."""
        return runner.train(config, getattr(args, "run_dir", None), getattr(args, "force", False))

    # ---- using a trained model
    def evaluate(self, task, config, split, args=None):
        """Metrics of `task` on `split` (or on the data `args.data` names)."""
        raise NotImplementedError

    def report(self, title, metrics):
        cli.print_metrics(title, metrics)

    def main_report(self, runner, task, config):
        """What the main job prints after training (default: the test split's metrics)."""
        self.report("test split", self.evaluate(task, config, "test"))

    def main_pictures(self, task, config, folder):
        """Pictures of a few test examples the main job writes into the run folder; returns their paths."""
        return []

    def export_samples(self, config, checks):
        """Raw sample inputs from real data that calibrate int8 TFLite and check parity."""
        raise NotImplementedError

    def export(self, task, config, samples, base_dir, name, quantizations):
        raise NotImplementedError

    def predict(self, task, config, args):
        """Prints the prediction for the inputs `args` names and returns it as a JSON-able dict."""
        raise NotImplementedError

    # ---- command line
    shortcuts = {}  # flags that stand for config values (`cli.SAMPLING_FLAGS`, caption's --beam-width, ...)

    def add_train_arguments(self, parser):
        parser.add_argument("--run-dir", help="run directory; an interrupted run given here resumes from its last backup")
        parser.add_argument("--force", action="store_true",
                            help="resume a run in --run-dir even though the config differs from the one it started with")

    def add_eval_arguments(self, parser):
        parser.add_argument("--split", default="test")

    def add_predict_arguments(self, parser):
        raise NotImplementedError

    def add_commands(self, runner, app_parser):
        """Subcommands of the app's own (retrieval's index and search, generate's stages, ...)."""


class Runner:
    def __init__(self, app):
        self.app = app
        self.run_path = None  # the run `train` wrote last

    # --------------------------------------------------------------------------------- configuration

    def resolve_config(self, args, base=None):
        """The training config (file or apps/<app>.toml, then --set), or, with `base` (a trained run's
        config), that config with the explicitly given --config and --set applied."""
        path = getattr(args, "config", None)
        default = Path("apps") / f"{self.app.name}.toml"
        if path is None and base is None and default.is_file():
            path = default
        self.check_honoured(given_keys(read_toml(path)) if path else [])
        self.check_honoured([o.split("=", 1)[0].strip() for o in self.overrides(args)])
        config = load_config(self.app.config_class, path, self.overrides(args), base=base)
        self.app.check_config(config)
        return config

    def check_honoured(self, keys):
        for key in keys:
            for refused, why in self.app.cannot_honour.items():
                if key == refused or key.startswith(refused + "."):
                    raise TfmmError(f"{key}: the {self.app.name} app cannot honour it ({why})")

    def overrides(self, args):
        return cli.overrides(args) + cli.shortcut_overrides(args, self.app.shortcuts)

    def _model_path(self, args):
        if getattr(args, "model", None):
            return Path(args.model)
        return cli.latest_run(self.resolve_config(args).train.output_dir, self.app.name)

    def load(self, args):
        """(task, config, path) of the trained model `--model` names, with the config it was trained with
        (a run directory's `config.toml`; for a bare preset, the app's defaults) and the user's --set.
        Without --model, a config naming a ready-made model (retrieval's `model.preset`) gives that model."""
        if not getattr(args, "model", None):
            config = self.resolve_config(args)
            ready = self.app.ready_made_task(config)
            if ready is not None:
                return ready[0], config, ready[1]
        preset = preset_path(self._model_path(args))
        fixed = [o for o in self.overrides(args) if o.split("=", 1)[0].split(".")[0] in self.app.model_sections]
        if fixed:
            raise TfmmError(f"--set {fixed[0]}: the trained model in {preset} fixes its "
                            f"{'/'.join(self.app.model_sections)} section; train again to change it")
        run = preset.parent if preset.name == PRESET_DIR and (preset.parent / "config.toml").is_file() else None
        base = load_config(self.app.config_class, run / "config.toml") if run else None
        config = self.resolve_config(args, base)
        task = from_preset(preset)
        if not isinstance(task, self.app.task_class):
            kinds = self.app.task_class if isinstance(self.app.task_class, tuple) else (self.app.task_class,)
            raise TfmmError(f"{preset} holds a {type(task).__name__}; the {self.app.name} app takes a "
                            f"{' or '.join(kind.__name__ for kind in kinds)}")
        size = task.preprocessor.image_size
        if any(o.startswith("data.image_size=") for o in self.overrides(args)) and config.data.image_size != size:
            raise TfmmError(f"data.image_size {config.data.image_size}: the model in {preset} takes {size}×{size} images")
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, image_size=size))
        return task, config, run or preset

    # ----------------------------------------------------------------------------------- the steps

    def train(self, config, run_path=None, force=False):
        """Trains under the configured strategy and precision; returns the task loaded from the run's preset
        (None on non-chief workers). Given the `run_path` of an interrupted run, training resumes (with the
        config it started with, unless `force`)."""
        session = TrainingSession(config)  # first: a multi-worker strategy needs an untouched runtime
        app, checks = self.app, DataChecks(strict=config.data.strict)
        run_path = self.run_path = Path(run_path or cli.run_dir(config.train.output_dir, app.name))
        prepare_run_dir(config, run_path, force)
        train_examples = app.load_split(config, "train", checks)
        preprocessor = app.build_preprocessor(config, train_examples)

        def stream():  # a fresh, endless stream per fit call: batch n is the same in every run
            return app.pipeline(config, train_examples, training=True, shard=session.shard, repeat=True)

        validation = None
        if app.has_validation(config):
            validation = with_known_length(app.pipeline(config, app.load_split(config, "validation", checks),
                                                        training=False, shard=session.shard))
        task = session.train(app.name, lambda: app.build_task(config, preprocessor), stream, validation,
                             app.example_count(config, train_examples), run_path, app.learning_rate_multipliers(config))
        if checks.summary():
            print(checks.summary())
        return task

    def export(self, task, config, name=None):
        samples = self.app.export_samples(config, DataChecks(strict=config.data.strict, log=lambda _: None))
        quantizations = config.export.tflite_quantization if config.export.tflite else []
        return self.app.export(task, config, samples, config.export.base_dir, name or config.export.name or self.app.name,
                               quantizations)

    # -------------------------------------------------------------------------------- the commands

    def cmd_main_job(self, args):
        """Train the default config, evaluate on the test split, export: the README's first command."""
        config = self.resolve_config(args)
        task = self.app.train(self, config)
        if task is None:  # a non-chief worker: the chief evaluates and exports
            return
        self.app.main_report(self, task, config)
        pictures = self.app.main_pictures(task, config, self.run_path)
        self.print_summary(export=self.export(task, config), pictures=pictures)

    def cmd_train(self, args):
        config = self.resolve_config(args)
        task = self.app.train(self, config, args)
        if task is not None and self.app.has_validation(config):
            self.app.report("validation", self.app.evaluate(task, config, "validation"))
        if task is not None:
            self.print_summary()

    def print_summary(self, export=None, pictures=()):
        """Where the run went: the last lines of a main job or a `train`."""
        run = self.run_path
        rows = [("run", f"{run}  (config.toml, history.csv, loss.png, logs/)"),
                ("preset", f"{run / PRESET_DIR}  (tfmm.models.from_preset, or --model)")]
        rows += [("picture", str(p)) for p in pictures]
        if export is not None:
            tflite = sorted(p.name for p in (Path(export) / "tflite").glob("*.tflite"))
            rows.append(("export", f"{export}" + (f"  (+ tflite/: {', '.join(tflite)})" if tflite else "")))
        print("\nwritten")
        for name, where in rows:
            print(f"  {name:<8} {where}")

    def cmd_eval(self, args):
        task, config, path = self.load(args)
        metrics = self.app.evaluate(task, config, args.split, args)
        if "examples" not in metrics:  # every evaluation says how much it scored
            raise RuntimeError(f"{self.app.name} evaluate() returned no 'examples' count")
        self.app.report(f"{getattr(args, 'data', None) or args.split} ({path})", metrics)
        if args.output:
            cli.write_json(args.output, metrics)

    def cmd_predict(self, args):
        task, config, _ = self.load(args)
        result = self.app.predict(task, config, args)
        if args.output:
            cli.write_json(args.output, result)

    def cmd_export(self, args):
        task, config, _ = self.load(args)
        print(f"exported {self.export(task, config, args.name)}")

    def parser(self):
        app = cli.AppParser(self.app.name, self.app.description, self.cmd_main_job)
        self.app.add_train_arguments(app.command("train", self.cmd_train, "train a model", model=False))
        self.app.add_eval_arguments(app.command("eval", self.cmd_eval, "evaluate a trained model", output=True))
        self.app.add_predict_arguments(app.command("predict", self.cmd_predict, "predict for your inputs", output=True))
        app.command("export", self.cmd_export, "SavedModel (TF Serving layout) and TFLite").add_argument(
            "--name", help=f"model name under saved_models/ (default: export.name or {self.app.name})")
        self.app.add_commands(self, app)
        return app.parser

    def main(self, argv=None):
        return cli.main(self.parser(), argv)
