"""open_clip side of `python -m tools.bench peer`; runs in its own virtual environment (tools/.venv-openclip).

Arguments: steps warmup batch threads repeats modes ("float32,bfloat16" or "float32") parts (any of
"train,infer,matmul"; the bench runs the training part in rounds between tfmm's). Builds the tiny CLIP of the
benchmark spec and prints one JSON line with the parts asked for:
{"train": {"float32": [step seconds...], "bfloat16": [...]},
 "infer": {"float32 batch 1": {"image": [seconds...], "text": [...]}, ...},
 "matmul": {"PyTorch float32 2048×2048×2048": GFLOP/s, ...}}.
"""

import json
import sys
import time

import open_clip
import torch

MATMUL_SHAPES = ((2048, 2048, 2048), (8320, 256, 1024))


def tiny_clip():
    return open_clip.CLIP(
        embed_dim=256,
        vision_cfg=open_clip.CLIPVisionCfg(image_size=64, patch_size=8, width=256, layers=4, head_width=64, mlp_ratio=4.0),
        text_cfg=open_clip.CLIPTextCfg(context_length=32, vocab_size=2048, width=256, heads=4, layers=4),
    )


def train_times(mode, steps, warmup, batch):
    model = tiny_clip()
    model.train()
    loss_fn = open_clip.ClipLoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    images = torch.rand(batch, 3, 64, 64)
    texts = torch.randint(1, 2048, (batch, 32))
    times = []
    for step in range(warmup + steps):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bfloat16"):
            image_features, text_features, logit_scale = model(images, texts)
            loss = loss_fn(image_features.float(), text_features.float(), logit_scale.float())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step >= warmup:
            times.append(time.perf_counter() - start)
    return times


def call_times(function, repeats, warmup=3):
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def infer_times(mode, batch, repeats):
    """Eval mode, no autograd: the way open_clip embeds a gallery."""
    model = tiny_clip().eval()
    images, texts = torch.rand(batch, 3, 64, 64), torch.randint(1, 2048, (batch, 32))
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bfloat16"):
        return {"image": call_times(lambda: model.encode_image(images), repeats),
                "text": call_times(lambda: model.encode_text(texts), repeats)}


def matmul_gflops(modes, seconds=1.0):
    results = {}
    for m, k, n in MATMUL_SHAPES:
        for name in modes:
            dtype = getattr(torch, name)
            a, b = torch.rand(m, k).to(dtype), torch.rand(k, n).to(dtype)
            times = call_times(lambda: a @ b, 3)
            while sum(times) < seconds:
                times += call_times(lambda: a @ b, 1, warmup=0)
            results[f"PyTorch {name} {m}×{k}×{n}"] = 2.0 * m * k * n / min(times) / 1e9
    return results


def main(steps, warmup, batch, threads, repeats, modes, parts):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    modes = modes.split(",")
    make = {"train": lambda: {mode: train_times(mode, steps, warmup, batch) for mode in modes},
            "infer": lambda: {f"{mode} batch {b}": infer_times(mode, b, repeats) for mode in modes for b in (1, 64)},
            "matmul": lambda: matmul_gflops(modes)}
    print(json.dumps({part: make[part]() for part in parts.split(",")}))


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:6]), *sys.argv[6:8])
