"""scan_scenes: features over time ranges (Ray tasks or sequential), one decision pass."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import SceneConfig
from .detect import Features, decide
from .features import FeatureExtractor, feature_columns


@dataclass(frozen=True)
class Scene:
    scene: int  # 0-based
    start_frame: int
    end_frame: int  # exclusive
    transition: str  # 'start' | 'cut' | 'fade' | 'dissolve': how this scene begins
    score: float  # detector score of that boundary (0.0 for the first scene)
    low_variability: bool = False  # black/flat/blank span: no exemplar, not propagated into

    @property
    def frames(self) -> int:
        return self.end_frame - self.start_frame


def _luma_levels(info) -> tuple[float, float]:
    from pipeline.io import luma_range

    return luma_range(info)


def range_features(info, start: int, end: int, config: SceneConfig) -> tuple[np.ndarray, np.ndarray]:
    """Feature rows for frames start <= j < end (decoding `config.lookback` frames before)."""
    from pipeline.io import iter_luma

    black, white = _luma_levels(info)
    ext = FeatureExtractor(config, black, white)
    size = config.thumb_size(info.width, info.height)
    first = max(0, start - config.lookback)
    for idx, luma in iter_luma(info, first, end, size=size):
        ext.process(idx, luma)
    return ext.rows(start)


def split_ranges(n: int, parts: int) -> list[tuple[int, int]]:
    parts = max(1, min(int(parts), n))
    edges = [round(i * n / parts) for i in range(parts + 1)]
    return [(edges[i], edges[i + 1]) for i in range(parts) if edges[i + 1] > edges[i]]


def _remote_features(num_cpus: float = 1):
    import ray

    @ray.remote(max_retries=2)
    def _task(info, start, end, config):
        return range_features(info, start, end, config)

    # A scan running beside the colour actors asks for no CPU slot (they hold them all);
    # it shares the cores with them instead of waiting for them.
    return _task.options(num_cpus=num_cpus)


def features_for(info, config: SceneConfig, ranges: int | None = None, task_cpus: float = 1) -> Features:
    """Merged features of the whole film: Ray tasks over time ranges if Ray is up."""
    n = info.frame_count
    parts = None
    try:
        import ray

        use_ray = ray.is_initialized()
    except ImportError:  # pragma: no cover
        use_ray = False
    if use_ray:
        if ranges is None:
            ranges = max(1, int(ray.cluster_resources().get("CPU", 1)))
        task = _remote_features(task_cpus)
        refs = [task.remote(info, s, e, config) for s, e in split_ranges(n, ranges)]
        parts = ray.get(refs)
    else:
        parts = [range_features(info, 0, n, config)]
    idx = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
    mat = np.vstack([p[1] for p in parts]) if parts else np.zeros((0, len(feature_columns(config))))
    if len(idx) != n or not np.array_equal(idx, np.arange(n)):
        raise RuntimeError(f"{info.path}: scene scan covered {len(idx)} of {n} frames")
    return Features(feature_columns(config), mat)


def scenes_from_features(f: Features, config: SceneConfig) -> list[Scene]:
    n = f.n
    bounds, flat = decide(f, config)
    starts = [0] + [b.frame for b in bounds]
    ends = starts[1:] + [n]
    out = []
    for i, (s, e) in enumerate(zip(starts, ends)):
        b = bounds[i - 1] if i > 0 else None
        lv = bool(np.count_nonzero(flat[s:e]) >= config.low_variability_fraction * (e - s)) if e > s else False
        out.append(Scene(
            scene=i,
            start_frame=int(s),
            end_frame=int(e),
            transition=b.transition if b else "start",
            score=round(float(b.score), 6) if b else 0.0,
            low_variability=lv,
        ))
    return out


def scan_scenes(path: str, info, config: SceneConfig | None = None, ranges: int | None = None,
                task_cpus: float = 1) -> list[Scene]:
    """Scenes covering [0, info.frame_count) exactly, contiguous, sorted.

    If ray.is_initialized(), the film's time ranges are scanned as parallel Ray tasks
    (`ranges` of them, default = cluster CPUs); otherwise sequentially. Each range decodes
    `config.lookback` frames before itself, so every per-frame feature is computed from the
    same frames either way, and one decision pass runs on the merged features: the answer
    is identical either way.
    """
    config = config or SceneConfig()
    if path and path != info.path:
        import dataclasses

        info = dataclasses.replace(info, path=path)
    if info.frame_count == 0:
        return []
    return scenes_from_features(features_for(info, config, ranges, task_cpus), config)
