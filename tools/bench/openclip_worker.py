"""open_clip side of `python -m tools.bench peer`; runs in its own virtual environment (tools/.venv-openclip).

Trains the tiny CLIP of the benchmark spec on random batches and prints per-step
times as JSON: {"float32": [...], "bfloat16": [...]}.
"""

import json
import sys
import time

import open_clip
import torch


def main(steps, warmup, batch, threads):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    results = {}
    for mode in ("float32", "bfloat16"):
        model = open_clip.CLIP(
            embed_dim=256,
            vision_cfg=open_clip.CLIPVisionCfg(image_size=64, patch_size=8, width=256, layers=4, head_width=64, mlp_ratio=4.0),
            text_cfg=open_clip.CLIPTextCfg(context_length=32, vocab_size=2048, width=256, heads=4, layers=4),
        )
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
        results[mode] = times
    print(json.dumps(results))


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:5]))
