"""The demo, one module so its tiny exports are built once per test worker:

- its actions against oracles (the same SavedModel signature called directly, NumPy brute force);
- `--server`: the same actions through `tfmm.serving` over gRPC;
- the page in headless Chromium: upload, ask, search, generate, read what the page shows. Screenshots go to
  $TFMM_SCREENSHOTS (default: the test's folder).
"""

import os
import socket
from pathlib import Path

import numpy as np
import pytest
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from tfmm.demo.actions import NO_WORDS, Actions, decode_image
from tfmm.errors import TfmmError


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bytes(path):
    with open(path, "rb") as handle:
        return handle.read()


def test_search_ranks_images_as_brute_force_cosine(actions, demo_models, demo_examples):
    paths = demo_examples.scene_images
    images = demo_models.call("retrieval", "embed_image", image_bytes=[_bytes(p) for p in paths])["embedding"]
    query = demo_models.call("retrieval", "embed_text", text=["a red circle"])["embedding"][0]
    images = images / np.linalg.norm(images, axis=1, keepdims=True)
    scores = images @ (query / np.linalg.norm(query))
    expected = [paths[i] for i in np.argsort(-scores, kind="stable")[:5]]
    found = actions.search_images("a red circle", top_k=5)
    assert [path for path, _ in found] == expected
    assert [float(score) for _, score in found] == pytest.approx(np.sort(scores)[::-1][:5], abs=0.006)


def test_captions_and_zero_shot_match_the_signatures(actions, demo_models, demo_examples):
    image = demo_examples.scene_images[3]
    captions = actions.search_captions(image, top_k=3)
    texts = list(dict.fromkeys(demo_examples.scene_captions))
    embedded = demo_models.call("retrieval", "embed_text", text=texts)["embedding"]
    query = demo_models.call("retrieval", "embed_image", image_bytes=[_bytes(image)])["embedding"][0]
    scores = (embedded / np.linalg.norm(embedded, axis=1, keepdims=True)) @ (query / np.linalg.norm(query))
    assert list(captions) == [texts[i] for i in np.argsort(-scores, kind="stable")[:3]]

    probabilities = actions.zero_shot(image, " circle, star ,square,")
    direct = demo_models.call("retrieval", "zero_shot", image_bytes=[_bytes(image)], class_names=["circle", "star", "square"])
    assert list(probabilities) == ["circle", "star", "square"]
    np.testing.assert_allclose(list(probabilities.values()), direct["probabilities"][0], atol=1e-6)
    with pytest.raises(TfmmError, match="at least two class names"):
        actions.zero_shot(image, "circle")


def test_vqa_answer_top5_and_attention(actions, demo_models, demo_examples):
    image, question = demo_examples.vqa[0]
    answer, top, overlay = actions.answer(image, question)
    direct = demo_models.call("vqa", "answer", image_bytes=[_bytes(image)], question=[question])
    assert answer == direct["answer"][0].decode()
    assert list(top) == [a.decode() for a in direct["top_answers"][0]]
    assert max(top, key=top.get) == answer
    assert overlay.shape == (256, 256, 3) and overlay.dtype == np.uint8
    # The attention the signature returns is a distribution over the image's regions.
    np.testing.assert_allclose(direct["attention"].sum(axis=-1), 1.0, atol=1e-4)


def test_caption_words_spell_the_caption(actions, demo_models, demo_examples):
    image = demo_examples.scene_images[0]
    caption, strip = actions.caption(image, beam_width=2)
    direct = demo_models.call("caption", "caption_beam", image_bytes=[_bytes(image)], beam_width=2)
    assert caption == direct["caption"][0].decode()
    words = " ".join(word for _, word in strip).replace(" ##", "")
    assert words.replace(" ", "") == caption.replace(" ", "")
    assert all(picture.shape == (128, 128, 3) for picture, _ in strip)
    with pytest.raises(TfmmError, match="beam_width must be between 1 and"):
        actions.caption(image, beam_width=99)


def test_a_caption_without_words_says_so(demo_examples):
    class Silent:  # a captioner whose first token is the end token
        def call(self, app, signature, **inputs):
            return {"caption": np.array([b""]), "words": np.zeros((1, 0), object), "attention": np.zeros((1, 0, 16))}

    caption, strip = Actions(Silent(), demo_examples).caption(demo_examples.scene_images[0])
    assert (caption, strip) == (NO_WORDS, [])


def test_classify_reports_every_task_best_first(actions, demo_models, demo_examples):
    image, text = demo_examples.scene_images[1], demo_examples.scene_reports[1]
    groups = actions.classify(image, text)
    direct = demo_models.call("classify", "classify", image_bytes=[_bytes(image)], text=[text])
    tasks = sorted(name for name in direct if not name.endswith(("_probabilities", "_top_labels")))
    assert sorted(groups) == tasks
    for task in tasks:
        best = max(groups[task], key=groups[task].get)
        assert best == direct[task][0].decode()
        assert max(groups[task].values()) == pytest.approx(direct[f"{task}_probabilities"][0].max(), abs=1e-6)


def test_generate_is_seeded_and_edit_keeps_tokens_outside_the_box(actions, demo_models, demo_examples):
    first, note = actions.generate("a red circle", count=3, seed=5)
    again, _ = actions.generate("a red circle", count=3, seed=5)
    other, _ = actions.generate("a red circle", count=3, seed=6)
    assert len(first) == 3 and note == ""
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))
    _, unknown = actions.generate("zzqx", count=1)
    assert "knows no word" in unknown

    image = demo_examples.scene_images[2]
    kept = demo_models.call("generate", "encode", image_bytes=[_bytes(image)])["tokens"][0]
    out = demo_models.call("generate", "edit", image_bytes=[_bytes(image)], box=[0, 0, 8, 8], prompt=["a blue star"],
                           seed=1, temperature=1.0, top_k=0, guidance_scale=2.0)
    tokens = out["tokens"][0]
    grid = tokens.shape[0]  # 16 px image, 4×4 cells: the box covers the top-left 2×2 cells
    outside = np.ones((grid, grid), bool)
    outside[:2, :2] = False
    assert np.array_equal(tokens[outside], kept[outside])
    assert decode_image(out["png"][0]).shape == actions.edit(image, "a blue star", (0, 0, 8, 8)).shape
    with pytest.raises(TfmmError, match="box must be"):
        actions.edit(image, "a blue star", (0, 0, 99, 8))


def test_bad_uploads_and_missing_models_get_one_line_messages(actions, demo_examples, tmp_path):
    from tfmm.demo.actions import Actions
    from tfmm.demo.backends import SavedModels

    text_file = tmp_path / "notes.png"
    text_file.write_text("not an image")
    with pytest.raises(TfmmError, match="notes.png is not an image"):
        actions.answer(str(text_file), "what color is the shape?")
    huge = tmp_path / "huge.png"
    huge.write_bytes(b"\0" * ((10 << 20) + 1))
    with pytest.raises(TfmmError, match="huge.png is 10.0 MB"):
        actions.caption(str(huge))
    with pytest.raises(TfmmError, match="give a question"):
        actions.answer(demo_examples.vqa[0][0], "   ")
    with pytest.raises(TfmmError, match="give an image"):
        actions.classify(None, "a report")

    empty = Actions(SavedModels(tmp_path / "none"), demo_examples)
    with pytest.raises(TfmmError, match=r"no vqa model in .*`python -m tfmm.apps.vqa` trains and exports one"):
        empty.answer(demo_examples.vqa[0][0], "what color is the shape?")


# ------------------------------------------------------------ served over gRPC

@pytest.fixture(scope="module")
def served(demo_models_dir, tmp_path_factory):
    from tfmm.serving.config import parse_model_config_file
    from tfmm.serving.server import ModelServer

    apps = ("vqa", "generate")  # one model with a string answer, one that returns PNG bytes
    config = tmp_path_factory.mktemp("serving") / "models.config"
    config.write_text("model_config_list {\n" + "".join(
        f'  config {{ name: "{app}" base_path: "{demo_models_dir / app}" model_platform: "tensorflow" }}\n'
        for app in apps) + "}\n")
    port = _free_port()
    server = ModelServer(parse_model_config_file(config), grpc_port=port, rest_port=0, poll_seconds=0.2).start()
    yield f"127.0.0.1:{port}"
    server.stop()


def test_served_answers_match_local_ones(served, actions, demo_examples):
    from tfmm.demo.actions import Actions
    from tfmm.demo.backends import ServedModels

    remote = Actions(ServedModels(served), demo_examples)
    assert remote.models.available("vqa") and not remote.models.available("caption")
    image, question = demo_examples.vqa[2]
    answer, top, overlay = remote.answer(image, question)
    local = actions.answer(image, question)
    assert answer == local[0] and list(top) == list(local[1])
    np.testing.assert_array_equal(overlay, local[2])
    images, _ = remote.generate("a green square", count=2, seed=4, guidance_scale=2.0)
    expected, _ = actions.generate("a green square", count=2, seed=4, guidance_scale=2.0)
    assert all(np.array_equal(a, b) for a, b in zip(images, expected))  # PNG bytes intact over gRPC
    with pytest.raises(TfmmError, match="no caption model in the server at"):
        remote.caption(demo_examples.scene_images[0])
    with pytest.raises(TfmmError, match="temperature must be above 0"):
        remote.generate("a green square", count=1, temperature=0.0)


# ------------------------------------------------------------ in the browser

@pytest.fixture(scope="module")
def page_url(demo_models, demo_examples):
    from tfmm.demo.page import build_page, launch

    port = _free_port()
    page = build_page(demo_models, demo_examples)
    launch(page, demo_examples, port=port, block=False)
    yield f"http://127.0.0.1:{port}/"
    page.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = Path(os.environ.get("TFMM_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _open_tab(browser, url, name):
    if browser.current_url != url:
        browser.get(url)
    wait = WebDriverWait(browser, 60)
    tab = wait.until(EC.element_to_be_clickable((By.XPATH, f"//button[@role='tab' and normalize-space()='{name}']")))
    tab.click()
    return wait


def _upload(browser, element_id, path):
    field = browser.find_element(By.CSS_SELECTOR, f"#{element_id} input[type=file]")
    field.send_keys(str(path))
    WebDriverWait(browser, 60).until(lambda b: b.find_elements(By.CSS_SELECTOR, f"#{element_id} img"))


def _type(browser, element_id, text):
    box = browser.find_element(By.CSS_SELECTOR, f"#{element_id} textarea, #{element_id} input")
    box.clear()
    box.send_keys(text)


def _value(browser, element_id):
    return browser.find_element(By.CSS_SELECTOR, f"#{element_id} textarea, #{element_id} input").get_attribute("value")


def _toasts(browser):
    """The texts of the messages (Gradio's toasts) on the page."""
    return [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".toast-body, [data-testid='toast-body']") if e.text.strip()]


def test_vqa_tab_answers_as_the_saved_model(browser, page_url, demo_examples, actions, shots):
    image, question = demo_examples.vqa[1]
    wait = _open_tab(browser, page_url, "VQA")
    _upload(browser, "vqa-image", image)
    _type(browser, "vqa-question", question)
    browser.find_element(By.ID, "vqa-run").click()
    wait.until(lambda b: _value(b, "vqa-answer"))
    expected, top, _ = actions.answer(image, question)
    assert _value(browser, "vqa-answer") == expected
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#vqa-attention img"))
    labels = browser.find_element(By.ID, "vqa-top").text
    assert all(answer in labels for answer in top)
    browser.save_screenshot(str(shots / "vqa.png"))


def test_search_tab_shows_the_brute_force_top_images(browser, page_url, actions, shots):
    wait = _open_tab(browser, page_url, "Search")
    _type(browser, "search-query", "a large blue star")
    browser.find_element(By.ID, "search-run").click()
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#search-gallery img")) >= 5)
    expected = [Path(path).name for path, _ in actions.search_images("a large blue star")]
    shown = [img.get_attribute("src") for img in browser.find_elements(By.CSS_SELECTOR, "#search-gallery img")][:5]
    assert [next((name for name in expected if name in src), src) for src in shown] == expected
    browser.save_screenshot(str(shots / "search.png"))


def test_generate_tab_fills_a_grid(browser, page_url, shots):
    wait = _open_tab(browser, page_url, "Generate")
    _type(browser, "generate-prompt", "a small blue star")
    browser.find_element(By.ID, "generate-run").click()
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#generate-grid img")) == 8)
    browser.save_screenshot(str(shots / "generate.png"))


def test_a_file_that_is_not_an_image_gets_a_message(browser, page_url, demo_examples, actions, tmp_path, shots):
    wait = _open_tab(browser, page_url, "Caption")
    bogus = tmp_path / "holiday.png"
    bogus.write_text("this is a text file")
    browser.find_element(By.CSS_SELECTOR, "#caption-image input[type=file]").send_keys(str(bogus))
    browser.find_element(By.ID, "caption-run").click()
    message = wait.until(lambda b: next(iter(_toasts(b)), None))
    assert "holiday.png is not an image the demo can read" in message, message
    assert "Traceback" not in browser.page_source and "/tmp/" not in message
    browser.save_screenshot(str(shots / "bad-upload.png"))
    # The page still works after the error: it shows the model's caption (never blank: `NO_WORDS` when the model
    # writes none), so the wait below tells the answer from no answer.
    image = demo_examples.scene_images[0]
    expected, _ = actions.caption(image)
    _upload(browser, "caption-image", image)
    browser.find_element(By.ID, "caption-run").click()
    try:
        wait.until(lambda b: _value(b, "caption-text"))
    except TimeoutException:
        pytest.fail(f"no caption after a good upload; messages on the page: {_toasts(browser)}")
    assert _value(browser, "caption-text") == expected


def test_a_tab_without_a_model_names_the_command(browser, demo_examples, demo_models_dir, tmp_path):
    import shutil

    from tfmm.demo.backends import SavedModels
    from tfmm.demo.page import build_page, launch

    shutil.copytree(demo_models_dir / "vqa", tmp_path / "vqa")
    port = _free_port()
    page = build_page(SavedModels(tmp_path), demo_examples)
    launch(page, demo_examples, port=port, block=False)
    try:
        url = f"http://127.0.0.1:{port}/"
        _open_tab(browser, url, "Caption")
        text = WebDriverWait(browser, 30).until(lambda b: next((e.text for e in b.find_elements(By.CSS_SELECTOR, ".tfmm-missing")
                                                                  if e.is_displayed() and e.text), None))
        assert "python -m tfmm.apps.caption" in text
        _open_tab(browser, url, "VQA")
        assert browser.find_element(By.ID, "vqa-run").is_displayed()
    finally:
        page.close()


def test_the_command_serves_the_page(demo_models_dir, tmp_path):
    """`python -m tfmm.demo` in its own process: it lists the models it found and answers over HTTP."""
    import subprocess
    import sys
    import time
    import urllib.request

    port = _free_port()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen([sys.executable, "-m", "tfmm.demo", "--models", str(demo_models_dir), "--port", str(port),
                                "--examples", str(tmp_path / "examples")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=env)
    try:
        deadline, page = time.time() + 120, None
        while page is None and time.time() < deadline and process.poll() is None:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
            except OSError:
                time.sleep(1)
        assert page is not None and "tfmm demo" in page
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert f"models from {demo_models_dir}: retrieval, vqa, caption, classify, generate" in output
    assert f"demo on http://127.0.0.1:{port}" in output
