"""Prompt fidelity against oracles: a judge that reads every scene right gives 1.0 on the real images of
the prompts, and the share of coinciding scenes when the prompts are shuffled (chance)."""

import numpy as np
import pytest

from tfmm.data.shapes import COLOURS, SHAPES
from tfmm.evaluation import evaluate_generator, judge_scenes, scene_labels

RNG = np.random.default_rng(0)
SCENES = ["|".join(f"{RNG.choice(COLOURS)} {RNG.choice(SHAPES)}" for _ in range(RNG.integers(1, 4))) for _ in range(60)]
IMAGES = RNG.integers(0, 256, (60, 8, 8, 3), dtype=np.uint8)


class PerfectJudge:
    """Reads each image's true scene (it knows which image it is shown)."""

    def read(self, images):
        index = {image.tobytes(): i for i, image in enumerate(IMAGES)}
        rows = [scene_labels(SCENES[index[image.tobytes()]], COLOURS, SHAPES) for image in images]
        return {head: np.array([row[head] for row in rows]) for head in rows[0]}


class Replay:
    """A 'generator' that draws the real image of each prompt."""

    def generate(self, prompts, seed=0, sampling=None, guidance_scale=None):
        return IMAGES[[int(p.split()[-1]) for p in prompts]]


def test_a_perfect_judge_reads_the_real_images_right():
    share, verdicts = judge_scenes(PerfectJudge(), IMAGES, SCENES, COLOURS, SHAPES)
    assert share == 1.0 and all(verdicts)


def test_shuffled_prompts_score_the_chance_of_coinciding_scenes():
    order = np.random.default_rng(1).permutation(60)
    share, _ = judge_scenes(PerfectJudge(), IMAGES[order], SCENES, COLOURS, SHAPES)
    assert share == pytest.approx(np.mean([SCENES[j] == SCENES[i] for i, j in enumerate(order)]))
    assert share < 0.2


def test_fidelity_of_a_generator_that_draws_the_prompt_is_one():
    prompts = [f"prompt {i}" for i in range(60)]
    metrics = evaluate_generator(Replay(), {"test": (prompts, SCENES, IMAGES)}, PerfectJudge(), (COLOURS, SHAPES))
    assert metrics["test_prompt_fidelity"] == 1.0 and metrics["test_judge_accuracy_on_real_images"] == 1.0
    shifted = [f"prompt {(i + 1) % 60}" for i in range(60)]
    metrics = evaluate_generator(Replay(), {"test": (shifted, SCENES, IMAGES)}, PerfectJudge(), (COLOURS, SHAPES))
    assert metrics["test_prompt_fidelity"] == pytest.approx(np.mean([SCENES[(i + 1) % 60] == SCENES[i] for i in range(60)]))


def test_scene_labels_follow_left_to_right_objects():
    labels = scene_labels("blue star|red circle", ("red", "blue"), ("circle", "star"))
    assert labels == {"count": 1, "colour0": 2, "shape0": 2, "colour1": 1, "shape1": 1, "colour2": 0, "shape2": 0}


class Tokenized(Replay):
    """A token model whose tokenizer rebuilds every other real image as another one (a lossy codebook)."""

    def encode(self, images):
        index = {image.tobytes(): i for i, image in enumerate(IMAGES)}
        return np.array([index[image.tobytes()] for image in images])

    def decode(self, tokens):
        return IMAGES[[t if t % 2 == 0 else (t + 1) % 60 for t in tokens]]


def test_a_token_models_ceiling_is_the_judges_reading_of_its_reconstructions():
    prompts = [f"prompt {i}" for i in range(60)]
    metrics = evaluate_generator(Tokenized(), {"test": (prompts, SCENES, IMAGES)}, PerfectJudge(), (COLOURS, SHAPES))
    expected = np.mean([i % 2 == 0 or SCENES[(i + 1) % 60] == SCENES[i] for i in range(60)])
    assert metrics["test_judge_accuracy_on_reconstructions"] == pytest.approx(expected) and expected < 0.9
    assert "test_judge_accuracy_on_reconstructions" not in evaluate_generator(
        Replay(), {"test": (prompts, SCENES, IMAGES)}, PerfectJudge(), (COLOURS, SHAPES))  # a GAN has no tokenizer
