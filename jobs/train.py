"""Train memnet (self-supervised) on synthetic clips made from installed photographs.

    python jobs/train.py --steps 1500 --out runs/memnet          # train (resumes if a
                                                                  # checkpoint is there)
    python jobs/train.py --steps 1500 --out runs/memnet --export pipeline/model/weights/memnet.safetensors

Each step: a batch of clips (pipeline.model.memnet_data, 'train' images only); frame 0 is
the exemplar (permanent memory), frames 1.. are predicted one by one from their grainy
luma exactly as at inference (the model's own previous output is the next frame's local
input; every gamma-th output enters working memory, which is compressed when full).
Loss: L1 on chroma. Data of step i depends only on (seed, i): a resumed run is identical
to an uninterrupted one. Uses CUDA when available (--device), else CPU.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.model.memnet import MemNet  # noqa: E402
from pipeline.model.memnet_net import ExemplarTrack  # noqa: E402
from pipeline.model.memnet_data import ClipSpec, load_images, make_clip, rgb_to_ycbcr  # noqa: E402
from pipeline.model.memory import MemoryConfig, MemoryManager  # noqa: E402

# training crops at decoder resolution (a 640x360 film runs at 180x320; the convolutions
# and the memory are size-agnostic, and smaller crops train faster on CPU)
H, W = 96, 160
TRAIN_MEM = MemoryConfig(gamma=2, max_working=3, min_working=1, compress_to=64,
                         max_longterm=256, topk=16)


JUMPS = (0.0, 0.0, 0.15, 0.4)  # per-clip probability of camera-time jumps, drawn uniformly
MAX_PAN = 0.05


def sample_batch(images, rng: np.random.Generator, batch: int, frames: int, video=None, video_frac: float = 0.0):
    """-> clean luma B x T x h x w, grainy luma B x T x h x w, chroma B x T x 2 x h x w.
    With ``video`` (memnet_data.VideoWindows), a ``video_frac`` share of the batch are real
    video windows, the rest synthetic clips over photographs."""
    ys, ls, cs = [], [], []
    n_video = int(round(batch * video_frac)) if video is not None else 0
    for _ in range(n_video):
        rgb, luma = video.sample(rng, frames, H, W)
        y, c = rgb_to_ycbcr(rgb)
        ys.append(y), ls.append(luma), cs.append(c)
    for _ in range(batch - n_video):
        im = images[rng.integers(len(images))][1]
        spec = ClipSpec(
            frames=frames, height=H, width=W,
            pan=rng.uniform(0.0, MAX_PAN), zoom=rng.uniform(0, 0.01), rotate=rng.uniform(0, 0.01),
            shake=rng.uniform(0, 0.01), occluders=int(rng.integers(0, 3)),
            occluder_speed=rng.uniform(0.01, 0.06), lighting=rng.uniform(0, 0.25),
            grain=rng.uniform(0, 0.04), time_jumps=float(rng.choice(JUMPS)),
        )
        others = [images[j][1] for j in rng.integers(0, len(images), 3)]
        rgb, luma = make_clip(im, spec, rng, others)
        y, c = rgb_to_ycbcr(rgb)
        ys.append(y), ls.append(luma), cs.append(c)
    return np.stack(ys), np.stack(ls), np.stack(cs)


CORRUPT = 0.15


def run_clips(net: MemNet, y, l, c, rng: np.random.Generator | None, device, corrupt=None):
    """Predict frames 1.. of each clip. -> (loss, predictions B x T-1 x 2 x h x w)."""
    B, T = l.shape[:2]
    corrupt = CORRUPT if corrupt is None else corrupt
    mem = MemoryManager(TRAIN_MEM)
    ex_l, ex_c = y[:, 0], c[:, 0]
    net.memorize(mem, torch.from_numpy(ex_l[:, None]).to(device), torch.from_numpy(ex_c).to(device),
                 permanent=True)
    prev_l, prev_c = ex_l, ex_c
    tracks = [ExemplarTrack() for _ in range(B)]  # as at inference: exemplar followed per clip
    loss, outs = 0.0, []
    for t in range(1, T):
        lt = torch.from_numpy(np.ascontiguousarray(l[:, t, None])).to(device)
        out, keys = net.frame(mem, lt, prev_l, prev_c, ex_l, ex_c, tracks=tracks)
        target = torch.from_numpy(np.ascontiguousarray(c[:, t])).to(device)
        loss = loss + F.l1_loss(out, target)
        if mem.should_memorize():
            net.memorize(mem, lt, out.detach(), keys=keys)
        prev_l, prev_c = l[:, t], out.detach().cpu().numpy()
        if rng is not None and corrupt > 0:  # teach recovery from a drifted previous frame
            for i in np.nonzero(rng.random(B) < corrupt)[0]:
                k = int(rng.choice([3, 7, 11]))
                prev_c[i] = np.stack([
                    np.asarray(__import__("cv2").GaussianBlur(ch, (k, k), 0)) for ch in prev_c[i]
                ]) + rng.normal(0, 0.05, (2, 1, 1)).astype(np.float32)
        outs.append(out.detach())
    return loss / (T - 1), torch.stack(outs, 1)


def psnr(pred: torch.Tensor, target: np.ndarray) -> float:
    mse = float(((pred.cpu() - torch.from_numpy(target)) ** 2).mean())
    return -10 * math.log10(max(mse, 1e-12))


def validate(net, val, device):
    """Chroma PSNR on the fixed validation clips: model, copy baseline."""
    y, l, c = val
    net.eval()
    with torch.no_grad():
        _, pred = run_clips(net, y, l, c, None, device)
    net.train()
    copy = float(((c[:, 1:] - c[:, :1]) ** 2).mean())
    return psnr(pred, c[:, 1:]), -10 * math.log10(copy)


def main(argv=None) -> int:
    global JUMPS, MAX_PAN, CORRUPT
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--frames", type=int, default=7)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ch", type=int, default=24)
    ap.add_argument("--global-logit", type=float, default=-4.0,
                    help="base log-weight of the memory readout the decoder learns on top of")
    ap.add_argument("--mem-scale", type=int, default=2, help="key resolution = decoder res / this")
    ap.add_argument("--out", default="runs/memnet")
    ap.add_argument("--export", default=None, help="write the trained weights (safetensors) here")
    ap.add_argument("--minutes", type=float, default=None, help="stop (and save) after this long")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1 is fastest on a busy 2-core machine)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--every", type=int, default=25, help="progress/checkpoint interval")
    ap.add_argument("--init", default=None, help="start from these weights (fine-tuning: "
                    "new optimizer and schedule)")
    ap.add_argument("--jumps", default=",".join(map(str, JUMPS)),
                    help="per-clip camera-time jump probabilities to draw from")
    ap.add_argument("--max-pan", type=float, default=MAX_PAN)
    ap.add_argument("--corrupt", type=float, default=CORRUPT,
                    help="probability of a degraded previous frame (drift recovery)")
    ap.add_argument("--export-only", action="store_true", help="export the checkpoint, no training")
    ap.add_argument("--video", default="", help="comma-separated colour videos (the 'train' split of "
                    "bench/model/footage.py) to draw real training windows from")
    ap.add_argument("--decoder-scale", type=int, default=2, help="decoder network resolution divisor "
                    "(as at inference: MemNetPropagator(decoder_scale=...))")
    ap.add_argument("--video-frac", type=float, default=0.5, help="share of each batch from --video")
    args = ap.parse_args(argv)

    JUMPS = tuple(float(x) for x in args.jumps.split(","))
    MAX_PAN, CORRUPT = args.max_pan, args.corrupt
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "checkpoint.pt"

    images = load_images("train", 480)
    val_images = load_images("val", 480)
    print(f"train images: {len(images)}, val images: {len(val_images)}", flush=True)
    video = None
    if args.video:
        from pipeline.model.memnet_data import VideoWindows

        video = VideoWindows(args.video.split(","))
        print(f"training video: {len(video.shots)} shots from {args.video}", flush=True)
    vrng = np.random.default_rng([args.seed, 10**9])
    val = sample_batch(val_images, vrng, 12, args.frames)

    net = MemNet(learned=True, ch=args.ch, mem_scale=args.mem_scale,
                 global_logit=args.global_logit).to(device)
    net.decoder_scale = args.decoder_scale
    if args.init and not ckpt.exists():
        from safetensors.torch import load_file

        net.load_state_dict(load_file(args.init))
        print(f"initialised from {args.init}", flush=True)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 50) * 0.5 * (1 + math.cos(math.pi * min(s, args.steps) / args.steps))
    )
    start, history = 0, []
    if ckpt.exists():
        st = torch.load(ckpt, weights_only=True, map_location=device)
        net.load_state_dict(st["net"])
        opt.load_state_dict(st["opt"])
        sched.load_state_dict(st["sched"])
        start = int(st["step"])
        history = json.loads((out / "history.json").read_text()) if (out / "history.json").exists() else []
        print(f"resumed from {ckpt} at step {start}", flush=True)
    else:
        v, vc = validate(net, val, device)
        history.append({"step": 0, "val_psnr": v, "copy_psnr": vc})
        print(f"step 0: val chroma PSNR {v:.2f} dB (untrained = fixed fusion), copy {vc:.2f} dB", flush=True)

    def save(step):
        torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                    "step": step}, ckpt.with_suffix(".tmp"))
        os.replace(ckpt.with_suffix(".tmp"), ckpt)
        (out / "history.json").write_text(json.dumps(history, indent=1))

    if args.export_only:
        export(net, args, history, start)
        return 0
    t0, run_loss, step = time.time(), 0.0, start
    net.train()
    for step in range(start, args.steps):
        rng = np.random.default_rng([args.seed, step])
        torch.manual_seed(args.seed * 100003 + step)
        y, l, c = sample_batch(images, rng, args.batch, args.frames, video, args.video_frac)
        loss, _ = run_clips(net, y, l, c, rng, device)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        run_loss += float(loss.detach())
        done = step + 1
        if done % args.every == 0 or done == args.steps:
            el = time.time() - t0
            rate = (done - start) / el
            v, vc = validate(net, val, device)
            history.append({"step": done, "loss": run_loss / args.every, "val_psnr": v, "copy_psnr": vc,
                            "elapsed_s": el})
            print(f"step {done}/{args.steps}  loss {run_loss / args.every:.4f}  val {v:.2f} dB "
                  f"(copy {vc:.2f})  lr {sched.get_last_lr()[0]:.2e}  {rate:.2f} it/s  "
                  f"ETA {(args.steps - done) / rate / 60:.1f} min", flush=True)
            run_loss = 0.0
            save(done)
        if args.minutes and time.time() - t0 > args.minutes * 60:
            print(f"time budget reached at step {done}", flush=True)
            save(done)
            break
    if args.export:
        export(net, args, history, done if args.steps > start else start)
    return 0


def export(net: MemNet, args, history, steps: int) -> None:
    import hashlib

    from safetensors.torch import save_file

    sd = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    last = history[-1] if history else {}
    meta = {
        "ch": str(args.ch), "mem_scale": str(args.mem_scale), "global_logit": str(args.global_logit), "decoder_scale": str(args.decoder_scale), "crop": f"{H}x{W}", "steps": str(steps), "seed": str(args.seed), "batch": str(args.batch),
        "frames": str(args.frames), "init": str(args.init or ""), "jumps": args.jumps,
        "max_pan": str(args.max_pan), "corrupt": str(args.corrupt), "val_psnr": f"{last.get('val_psnr', float('nan')):.3f}",
        "data": "synthetic clips from gnome/mate-backgrounds + scikit-image (train split)"
                + (f"; {args.video_frac:.0%} real video windows from {', '.join(Path(v).stem for v in args.video.split(','))}"
                   if args.video else ""),
    }
    Path(args.export).parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, args.export, metadata=meta)
    sha = hashlib.sha256(Path(args.export).read_bytes()).hexdigest()
    Path(args.export).with_suffix(".sha256").write_text(f"{sha}  {Path(args.export).name}\n")
    print(f"wrote {args.export} (sha256 {sha})", flush=True)
    from pipeline.model.memnet import DEFAULT_WEIGHTS, load_net
    from pipeline.model.memnet_quant import PREPARED, export_prepared, quantize_net

    if Path(args.export).resolve() == DEFAULT_WEIGHTS.resolve():  # the shipped int8 parts follow
        trained, _ = load_net(str(args.export))
        print(f"wrote {PREPARED} (sha256 {export_prepared(quantize_net(trained), sha)})", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
