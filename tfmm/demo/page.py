"""The demo page: one Gradio tab per app, each wired to `tfmm.demo.actions`.

A tab whose model is not exported shows the command that makes it; a bad upload or a request the model
refuses shows its one-line message on the page (`gr.Error`), never a stack trace.
"""

import functools
import html
import logging
import sys

import gradio as gr

from tfmm.demo.actions import Actions
from tfmm.demo.backends import ModelNotExported
from tfmm.errors import TfmmError

log = logging.getLogger("tfmm.demo")
IMAGE = {"type": "filepath", "sources": ["upload", "clipboard"], "height": 256}


def uploaded_image(**options):
    """An image upload handed to the action as the uploaded file itself: `read_image_upload` checks it, so
    a bad file gets our one-line message (gr.Image would decode it first and show its own internals).
    An instance override, not a subclass: Gradio writes a `.pyi` beside the module of every new component."""
    image = gr.Image(**IMAGE, **options)
    image.preprocess = lambda payload: None if payload is None else payload.path
    return image


def guarded(action):
    """Errors a visitor can act on become a message on the page; anything else is logged here and
    shown as one line, and the page keeps working."""
    @functools.wraps(action)
    def run(*args):
        try:
            return action(*args)
        except TfmmError as error:
            raise gr.Error(str(error), print_exception=False) from None
        except Exception as error:  # the model or the server failed: keep the page up
            log.exception("demo action %s failed", action.__name__)
            raise gr.Error(f"the model could not answer this request ({type(error).__name__})", print_exception=False) from None
    return run


def probability_bars(groups):
    """{group: {label: probability}} → HTML bars (one block per group), best first."""
    blocks = []
    for group, probabilities in groups.items():
        rows = "".join(
            f'<div class="tfmm-bar"><span class="tfmm-label">{html.escape(label)}</span>'
            f'<span class="tfmm-fill" style="width:{100 * p:.1f}%"></span><span class="tfmm-value">{p:.3f}</span></div>'
            for label, p in sorted(probabilities.items(), key=lambda item: -item[1]))
        blocks.append(f'<div class="tfmm-group" data-task="{html.escape(group)}"><b>{html.escape(group)}</b>{rows}</div>')
    return "".join(blocks)


CSS = """
.tfmm-bar {display: grid; grid-template-columns: 9em 1fr 4em; align-items: center; gap: .5em; margin: .15em 0}
.tfmm-fill {height: .9em; background: #4477aa; border-radius: 3px}
.tfmm-group {margin-bottom: .8em}
"""


def _missing(models, app):
    if models.available(app):
        return False
    gr.Markdown(f"**Not available:** {ModelNotExported(app, models.where())}", elem_classes=["tfmm-missing"])
    return True


def _search_tab(models, actions, examples):
    if _missing(models, "retrieval"):
        return
    gr.Markdown("Text → the closest of the built-in example scenes; an image → the closest captions and "
                "zero-shot labels.")
    with gr.Row():
        query = gr.Textbox(label="search text", value=examples.queries[0], elem_id="search-query")
        search = gr.Button("Search images", variant="primary", elem_id="search-run")
    gallery = gr.Gallery(label="top 5 images", columns=5, height=220, elem_id="search-gallery")
    gr.Examples([[q] for q in examples.queries], [query])
    search.click(guarded(actions.search_images), [query], gallery)
    with gr.Row():
        image = uploaded_image(label="image", elem_id="search-image")
        with gr.Column():
            captions = gr.Label(label="closest captions", num_top_classes=5, elem_id="search-captions")
            find = gr.Button("Find captions", elem_id="search-captions-run")
    with gr.Row():
        names = gr.Textbox(label="class names (comma-separated)", value=examples.class_names, elem_id="zero-shot-names")
        classify = gr.Button("Zero-shot", elem_id="zero-shot-run")
    labels = gr.Label(label="zero-shot probabilities", elem_id="zero-shot-labels")
    gr.Examples([[p] for p in examples.scene_images[:6]], [image])
    find.click(guarded(actions.search_captions), [image], captions)
    classify.click(guarded(actions.zero_shot), [image, names], labels)


def _vqa_tab(models, actions, examples):
    if _missing(models, "vqa"):
        return
    with gr.Row():
        image = uploaded_image(label="image", elem_id="vqa-image")
        attention = gr.Image(label="where the question looked", type="numpy", height=256, elem_id="vqa-attention")
    question = gr.Textbox(label="question", elem_id="vqa-question")
    ask = gr.Button("Answer", variant="primary", elem_id="vqa-run")
    answer = gr.Textbox(label="answer", elem_id="vqa-answer")
    top = gr.Label(label="top 5", num_top_classes=5, elem_id="vqa-top")
    gr.Examples([list(pair) for pair in examples.vqa], [image, question])
    ask.click(guarded(actions.answer), [image, question], [answer, top, attention])


def _caption_tab(models, actions, examples):
    if _missing(models, "caption"):
        return
    image = uploaded_image(label="image", elem_id="caption-image")
    width = gr.Slider(1, 5, value=1, step=1, label="beam width (1 = greedy)", elem_id="caption-beam")
    run = gr.Button("Caption", variant="primary", elem_id="caption-run")
    caption = gr.Textbox(label="caption", elem_id="caption-text")
    strip = gr.Gallery(label="attention per word", columns=8, height=180, elem_id="caption-strip")
    gr.Examples([[p] for p in examples.scene_images[:6]], [image])
    run.click(guarded(actions.caption), [image, width], [caption, strip])


def _classify_tab(models, actions, examples):
    if _missing(models, "classify"):
        return
    with gr.Row():
        image = uploaded_image(label="image", elem_id="classify-image")
        text = gr.Textbox(label="report", lines=4, elem_id="classify-text")
    run = gr.Button("Classify", variant="primary", elem_id="classify-run")
    bars = gr.HTML(elem_id="classify-bars")
    gr.Examples([[p, r] for p, r in zip(examples.scene_images[:4], examples.scene_reports[:4])], [image, text])
    run.click(guarded(lambda image, text: probability_bars(actions.classify(image, text))), [image, text], bars)


def _generate_tab(models, actions, examples):
    if _missing(models, "generate"):
        return
    prompt = gr.Textbox(label="prompt", value=examples.prompts[0], elem_id="generate-prompt")
    with gr.Row():
        count = gr.Slider(1, 16, value=8, step=1, label="samples", elem_id="generate-count")
        seed = gr.Number(0, precision=0, label="seed", elem_id="generate-seed")
        temperature = gr.Slider(0.1, 2.0, value=1.0, step=0.05, label="temperature", elem_id="generate-temperature")
        top_k = gr.Slider(0, 256, value=0, step=1, label="top-k (0 = every code)", elem_id="generate-top-k")
        guidance = gr.Slider(0.0, 8.0, value=3.0, step=0.5, label="guidance (1 = off)", elem_id="generate-guidance")
    run = gr.Button("Generate", variant="primary", elem_id="generate-run")
    grid = gr.Gallery(label="samples", columns=8, height=200, elem_id="generate-grid")
    note = gr.Markdown(elem_id="generate-note")
    gr.Examples([[p] for p in examples.prompts], [prompt])
    run.click(guarded(actions.generate), [prompt, count, seed, temperature, top_k, guidance], [grid, note])
    gr.Markdown("**Edit:** re-draw the region inside a box (pixels of the model's image size) for a prompt.")
    with gr.Row():
        image = uploaded_image(label="image to edit", elem_id="edit-image")
        edited = gr.Image(label="edited", type="numpy", height=256, elem_id="edit-result")
    with gr.Row():
        box = [gr.Number(v, precision=0, label=name, elem_id=f"edit-{name}")
               for name, v in zip(("x0", "y0", "x1", "y1"), (0, 0, 16, 16))]
        edit_prompt = gr.Textbox(label="prompt for the region", value=examples.prompts[1], elem_id="edit-prompt")
    edit = gr.Button("Edit", elem_id="edit-run")
    gr.Examples([[p] for p in examples.scene_images[:4]], [image])
    edit.click(guarded(lambda image, p, x0, y0, x1, y1, s, t, k, g: actions.edit(image, p, (x0, y0, x1, y1), s, t, k, g)),
               [image, edit_prompt, *box, seed, temperature, top_k, guidance], edited)


TABS = (("Search", _search_tab), ("VQA", _vqa_tab), ("Caption", _caption_tab), ("Classify", _classify_tab),
        ("Generate", _generate_tab))


def build_page(models, examples):
    actions = Actions(models, examples)
    with gr.Blocks(title="tfmm demo") as page:
        gr.Markdown(f"# tfmm demo\nModels from {models.where()}. Click an example, or upload your own image.")
        for name, build in TABS:
            with gr.Tab(name, elem_id=f"tab-{name.lower()}"):
                build(models, actions, examples)
    return page


def launch(page, examples, host="127.0.0.1", port=7860, block=True):
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: the demo listens on {host}, so other machines can reach it; it has no login", file=sys.stderr)
    return page.launch(server_name=host, server_port=port, css=CSS, show_error=True, max_file_size="10mb",
                       allowed_paths=[str(examples.folder)], prevent_thread_lock=not block, quiet=True)
