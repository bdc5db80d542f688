"""Tiny synthetic clips for the scene detector's tests, analysed in memory (no files)."""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.scenes import SceneConfig
from pipeline.scenes.detect import Features
from pipeline.scenes.features import FeatureExtractor
from pipeline.scenes.scan import scenes_from_features
from pipeline.scenes.synth import Clip, Shot

W, H = 192, 108


def clip(seed: int = 0) -> Clip:
    return Clip(W, H, seed=seed)


def shot(photo: str, frames: int = 40, **kw) -> Shot:
    kw.setdefault("pan", (1.0, 0.3))
    return Shot(photo, frames, **kw)


def features(c: Clip, config: SceneConfig | None = None) -> Features:
    cfg = config or SceneConfig()
    ext = FeatureExtractor(cfg, 0.0, 255.0)
    size = cfg.thumb_size(c.width, c.height)
    for i, f in enumerate(c.frames):
        y = np.rint(np.clip(f, 0, 1) * 255).astype(np.uint8)
        ext.process(i, cv2.resize(y, size, interpolation=cv2.INTER_AREA))
    _, mat = ext.rows()
    return Features(ext.columns, mat)


def scenes(c: Clip, config: SceneConfig | None = None):
    cfg = config or SceneConfig()
    return scenes_from_features(features(c, cfg), cfg)


def boundaries(c: Clip, config: SceneConfig | None = None) -> list[tuple[int, str]]:
    return [(s.start_frame, s.transition) for s in scenes(c, config)[1:]]
