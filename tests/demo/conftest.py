"""Tiny models exported once into a `saved_models/` layout, the demo's actions on them, and a headless
Chromium (Debian's `chromium` + `chromium-driver`, which the README's test command installs)."""

import shutil
from pathlib import Path

import pytest

APPS = ("retrieval", "vqa", "caption", "classify", "generate")


def export_tiny_models(base_dir):
    """Each app's SavedModel signatures (the apps' own `build_archive`) on a tiny untrained task. Seeded: what an
    untrained model says depends on its weights (one draw captioned the page test's image with no words at all)."""
    import keras

    from tfmm.export import captioner, classifier, contrastive, generator, vqa
    from tfmm.testing import tiny_tasks

    keras.utils.set_random_seed(0)

    builders = {
        "retrieval": lambda: contrastive.build_archive(tiny_tasks.retriever()),
        "vqa": lambda: vqa.build_archive(tiny_tasks.answerer("cross_attention")),
        "caption": lambda: captioner.build_archive(tiny_tasks.captioner("gru_attention"), 1),
        "classify": lambda: classifier.build_archive(tiny_tasks.classifier()),
        "generate": lambda: generator.build_archive(tiny_tasks.generator(), 3),
    }
    for app, build in builders.items():
        build().write_out(str(Path(base_dir) / app / "1"), verbose=False)
    return Path(base_dir)


@pytest.fixture(scope="session")
def demo_models_dir(tmp_path_factory):
    return export_tiny_models(tmp_path_factory.mktemp("saved_models"))


@pytest.fixture(scope="session")
def demo_examples(tmp_path_factory):
    from tfmm.demo.examples import examples

    return examples(str(tmp_path_factory.mktemp("examples")))


@pytest.fixture(scope="session")
def demo_models(demo_models_dir):
    from tfmm.demo.backends import SavedModels

    return SavedModels(demo_models_dir)


@pytest.fixture(scope="session")
def actions(demo_models, demo_examples):
    from tfmm.demo.actions import Actions

    return Actions(demo_models, demo_examples)


@pytest.fixture(scope="session")
def browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.fail("the browser tests need Debian's chromium and chromium-driver: "
                    "run `python -m tools.install_test_packages` (the README's test command does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1800"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(driver), options=options)
    yield browser
    browser.quit()
