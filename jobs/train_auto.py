"""Train the automatic colorizer (pipeline/model/auto_net.py) and export its safetensors weights.

    python jobs/train_auto.py --out runs/auto --steps 2000 --seed 0          # train (resumes with --resume)
    python jobs/train_auto.py --out runs/auto --export-only                   # export latest checkpoint

Reproducible: the batch of step i is drawn from np.random.default_rng([seed, i]), so a resumed run
sees the same data as an uninterrupted one. Uses CUDA when available, else CPU (--threads).
Export writes pipeline/model/weights/auto.safetensors (+ auto.sha256) and prints validation figures
as JSON (validation cross-entropy, RGB PSNR, colourfulness ratio predicted / true).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipeline.model import auto_data  # noqa: E402
from pipeline.model.auto_net import (GRID_STEP, OUT_STRIDE, T_DEFAULT, AutoNet, annealed_mean,  # noqa: E402
                                     grid_centres, grid_index, soft_encode)
from pipeline.model.memnet_data import rgb_to_ycbcr, ycbcr_to_rgb  # noqa: E402

WEIGHTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pipeline", "model", "weights")


def bins_and_weights(images: list[np.ndarray], lam: float = 0.5, min_count: int = 5):
    """Occurring (Cb, Cr) bins of the training images, and class-rebalancing weights (Zhang et al.)."""
    from scipy.ndimage import gaussian_filter

    grid = grid_centres(GRID_STEP)
    n = int(round(1.0 / GRID_STEP))
    hist = np.zeros(n * n, np.float64)
    for im in images:
        _, c = rgb_to_ycbcr(im.astype(np.float32) / 255.0)
        hist += np.bincount(grid_index(c.transpose(1, 2, 0)).ravel(), minlength=n * n)
    keep = np.nonzero(hist >= min_count)[0]
    p = hist / hist.sum()
    p_s = gaussian_filter(p.reshape(n, n), sigma=0.5, mode="constant").ravel()[keep]  # smoothed
    p_s = p_s / p_s.sum()
    q = len(keep)
    w = 1.0 / ((1 - lam) * p_s + lam / q)
    w = w / (p_s * w).sum()  # expected weight 1
    return grid[keep], w.astype(np.float32), p_s.astype(np.float32)


def lr_at(step: int, steps: int, lr: float, warmup: int = 100) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return lr * (0.03 + 0.97 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def loss_fn(logits, chroma, centres, weights):
    """Class-rebalanced soft cross-entropy at the logits' resolution; also the unweighted CE."""
    c = F.avg_pool2d(chroma, OUT_STRIDE)
    t = soft_encode(c, centres)
    logp = F.log_softmax(logits, 1)
    ce = -(t * logp).sum(1)  # N x h x w
    w = weights[t.argmax(1)]
    return (w * ce).mean(), ce.mean()


@torch.no_grad()
def evaluate(net, centres, weights, vy, vc, device, temperature=T_DEFAULT, bs=16):
    from pipeline.metrics import colorfulness, psnr

    net.eval()
    ces, wces, ps, cf_p, cf_t = [], [], [], [], []
    for i in range(0, len(vy), bs):
        y = torch.from_numpy(vy[i:i + bs]).to(device)
        c = torch.from_numpy(vc[i:i + bs]).to(device)
        lg = net(y)
        wl, ce = loss_fn(lg, c, centres, weights)
        ces.append(float(ce) * len(y))
        wces.append(float(wl) * len(y))
        pc = annealed_mean(lg, centres, temperature)
        pc = F.interpolate(pc, size=y.shape[2:], mode="bilinear", align_corners=False).cpu().numpy()
        for j in range(len(y)):
            yy = vy[i + j, 0]
            pr = np.clip(ycbcr_to_rgb(yy, pc[j]), 0, 1)
            tr = np.clip(ycbcr_to_rgb(yy, vc[i + j]), 0, 1)
            ps.append(psnr((pr * 255).astype(np.float64), (tr * 255).astype(np.float64)))
            cf_p.append(colorfulness(pr * 255))
            cf_t.append(colorfulness(tr * 255))
    net.train()
    n = len(vy)
    return {"val_ce": sum(ces) / n, "val_weighted_ce": sum(wces) / n, "val_psnr_rgb": float(np.mean(ps)),
            "val_colourfulness_pred": float(np.mean(cf_p)), "val_colourfulness_true": float(np.mean(cf_t)),
            "val_colourfulness_ratio": float(np.mean(cf_p) / max(1e-6, np.mean(cf_t)))}


def export(net, centres, temperature, path, meta):
    from safetensors.torch import save_file

    sd = {k: v.detach().float().cpu().contiguous() for k, v in net.state_dict().items()
          if not k.endswith("num_batches_tracked")}
    sd["centres"] = centres.float().cpu().contiguous()
    sd["temperature"] = torch.tensor([temperature], dtype=torch.float32)
    md = {k: str(v) for k, v in meta.items()}
    save_file(sd, path, metadata=md)
    h = hashlib.sha256(open(path, "rb").read()).hexdigest()
    with open(os.path.splitext(path)[0] + ".sha256", "w") as f:
        f.write(h + "\n")
    return h


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/auto", help="checkpoint directory")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-side", type=int, default=384, help="preload images at this longest side")
    ap.add_argument("--grain", type=float, default=0.03, help="max luma noise std (augmentation)")
    ap.add_argument("--ckpt-minutes", type=float, default=3.0)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--val-crops", type=int, default=64)
    ap.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")
    ap.add_argument("--export-only", action="store_true", help="export <out>/last.pt, no training")
    ap.add_argument("--weights", default=os.path.join(WEIGHTS, "auto.safetensors"))
    a = ap.parse_args(argv)

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    os.makedirs(a.out, exist_ok=True)
    t_load = time.time()
    train = [im for _, im in auto_data.load_images("train", a.max_side)]
    val_items = auto_data.load_images("val", a.max_side)
    val = [im for _, im in val_items]
    print(f"images: train {len(train)}, val {len(val)} ({time.time() - t_load:.1f}s to load)", flush=True)

    bins_path = os.path.join(a.out, "bins.npz")
    if os.path.exists(bins_path) and (a.resume or a.export_only):
        z = np.load(bins_path)
        centres_np, w_np = z["centres"], z["weights"]
    else:
        centres_np, w_np, p_np = bins_and_weights(train)
        np.savez(bins_path, centres=centres_np, weights=w_np, prior=p_np)
    print(f"bins: {len(centres_np)} (weights {w_np.min():.2f}..{w_np.max():.2f})", flush=True)
    centres = torch.from_numpy(centres_np).to(device)
    weights = torch.from_numpy(w_np).to(device)

    net = AutoNet(len(centres_np)).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=a.lr, weight_decay=1e-4)
    step, wall = 0, 0.0
    ckpt = os.path.join(a.out, "last.pt")
    if (a.resume or a.export_only) and os.path.exists(ckpt):
        s = torch.load(ckpt, map_location=device, weights_only=True)
        net.load_state_dict(s["net"])
        opt.load_state_dict(s["opt"])
        step, wall = int(s["step"]), float(s["wall"])
        print(f"resumed at step {step} ({wall / 60:.1f} min trained)", flush=True)
    n_params = sum(p.numel() for p in net.parameters())
    print(f"params: {n_params}  device: {device}", flush=True)
    vy, vc = auto_data.val_batch(val, a.val_crops, a.crop)

    def save():
        tmp = ckpt + ".tmp"
        torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "step": step, "wall": wall,
                    "args": vars(a)}, tmp)
        os.replace(tmp, ckpt)

    t0, last_ck, s0 = time.time(), time.time(), step
    net.train()
    while step < a.steps and not a.export_only:
        rng = np.random.default_rng([a.seed, step])
        y, c = auto_data.batch(train, rng, a.batch, a.crop, a.grain)
        y, c = torch.from_numpy(y).to(device), torch.from_numpy(c).to(device)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, a.steps, a.lr)
        loss, ce = loss_fn(net(y), c, centres, weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        now = time.time()
        if step % a.log_every == 0 or step == a.steps:
            sps = (step - s0) / (now - t0)
            eta = (a.steps - step) / max(sps, 1e-9)
            print(f"step {step}/{a.steps} loss {loss.item():.4f} ce {ce.item():.4f} lr {lr_at(step, a.steps, a.lr):.2e} "
                  f"{sps:.2f} steps/s ETA {eta / 60:.1f} min", flush=True)
        if now - last_ck > a.ckpt_minutes * 60 or step == a.steps:
            wall += now - last_ck
            last_ck = now
            save()
            print(f"checkpoint step {step} ({wall / 60:.1f} min)", flush=True)
    if a.export_only or step >= a.steps:
        figs = evaluate(net, centres, weights, vy, vc, device)
        meta = {"version": "1", "width": ",".join(map(str, net.width)), "n_bins": len(centres_np),
                "grid_step": GRID_STEP, "steps": step, "batch": a.batch, "crop": a.crop, "seed": a.seed,
                "train_images": len(train), "val_images": len(val), "wall_s": round(wall, 1)}
        h = export(net, centres, T_DEFAULT, a.weights, meta)
        figs.update({"steps": step, "wall_min": round(wall / 60, 1), "params": n_params, "bins": len(centres_np),
                     "train_images": len(train), "val_images": len(val), "sha256": h,
                     "val_names": [n for n, _ in val_items]})
        with open(os.path.join(a.out, "figures.json"), "w") as f:
            json.dump(figs, f, indent=1)
        print(json.dumps(figs, indent=1), flush=True)


if __name__ == "__main__":
    main()
