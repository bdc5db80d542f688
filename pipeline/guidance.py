"""Colour guidance per scene, decided at plan time: which exemplar colours which scene.

Three kinds of guide, all ending up as an ordinary exemplar image (an RGB still of one
frame) so the colouring stage treats them alike:
- `own`   a painted exemplar the user gave (`--exemplar`);
- `hints` a few dots of colour (`--hints`) spread over their frame along its luminance
          (pipeline.hints), stored as RUN_DIR/exemplars/<film>/hints-<frame>.png;
- `auto`  a keyframe of the scene (sharp, well exposed, near its middle) coloured by the
          automatic colorizer (pipeline.model.auto), stored as .../auto-<frame>.png.

A scene with no guide of its own takes the film's most similar guide (`matched`), unless
the best similarity is below `GuidanceConfig.auto_below`: then it gets automatic colours.
Automatic keyframes that look alike share one automatic exemplar, so a returning shot
keeps its colours. Flat/black scenes get none.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline import log, storage
from pipeline.errors import InputError
from pipeline.shard import Assignment, assign_exemplars


@dataclass(frozen=True)
class GuidanceConfig:
    # Chosen on validation clips (scikit-image photos outside the quality set, two shots of
    # each with other camera moves; luma descriptor similarity, pipeline.exemplar): the same
    # picture in another shot scored 0.89-0.95, different pictures 0.15-0.35.
    auto_below: float = 0.6  # a borrowing scene whose best exemplar is less similar than this: auto
    auto_reuse: float = 0.85  # an automatic keyframe this similar to an earlier one reuses it
    keyframe_candidates: int = 7  # frames looked at, spread over the middle 60% of the scene
    max_side: int = 320  # working resolution of the hint solve and the automatic colorizer


@dataclass(frozen=True)
class Guide:
    image: str  # URI of the exemplar image (the user's, or derived in the run directory)
    frame: int
    sha256: str
    source: str  # own | hints | auto


@dataclass(frozen=True)
class HintSpec:
    image: str
    frame: int
    sha256: str


def guide_dir(run_dir: str, film_id: str) -> str:
    from pipeline.names import join_inside

    return join_inside(run_dir, "exemplars", film_id)


def plan_guides(film, scenes, cfg: GuidanceConfig) -> tuple[list[Guide], dict[int, Assignment]]:
    """The film's guides (painted first, in the user's order, then hints, then automatic)
    and each scene's assignment (indices into that list)."""
    from pipeline.codecs import segment_spec

    matrix = segment_spec(film.info, film.codec).matrix
    guides = [Guide(img, fr, sha, "own") for img, fr, sha in
              zip(film.exemplar_images, film.exemplar_frames, film.exemplar_shas)]
    for h in film.hints:
        _add_hint(film, scenes, guides, h, matrix, cfg)
    assigned = _assign(film, scenes, guides, matrix)
    auto_scenes = [s for s in scenes if not getattr(s, "low_variability", False)
                   and (not assigned[s.scene].exemplars
                        or (assigned[s.scene].source == "matched"
                            and (assigned[s.scene].similarity or 0.0) < cfg.auto_below))]
    if auto_scenes:
        _add_auto(film, auto_scenes, guides, assigned, matrix, cfg)
    return guides, assigned


def _assign(film, scenes, guides: list[Guide], matrix: str) -> dict[int, Assignment]:
    from pipeline.exemplar import exemplar_luma, load_rgb, scene_similarities

    frames = [g.frame for g in guides]
    lacking = [s for s in scenes if not getattr(s, "low_variability", False)
               and not any(s.start_frame <= f < s.end_frame for f in frames)]
    similarity = None
    if lacking and guides:
        lumas = [exemplar_luma(load_rgb(g.image)[0], matrix=matrix) for g in guides]
        sims = scene_similarities(film.info, lacking, lumas)
        similarity = {s.scene: sims.get(s.scene, [0.0] * len(guides)) for s in scenes}
    assigned = assign_exemplars(scenes, frames, similarity)
    for sc, a in assigned.items():  # a scene guided only by hints says so
        if a.source == "own" and all(guides[i].source == "hints" for i in a.exemplars):
            assigned[sc] = Assignment(a.exemplars, "hints")
    return assigned


# --- hints ------------------------------------------------------------------------------

def _add_hint(film, scenes, guides: list[Guide], h: HintSpec, matrix: str, cfg: GuidanceConfig) -> None:
    from pipeline.exemplar import load_rgb
    from pipeline.hints import hint_exemplar, load_hints

    scene = next(s for s in scenes if s.start_frame <= h.frame < s.end_frame)
    if getattr(scene, "low_variability", False):
        raise InputError(f"hints {h.image}@{h.frame}: frame {h.frame} is in a low-variability span "
                         f"(scene {scene.scene}, frames {scene.start_frame}-{scene.end_frame - 1}: black or "
                         "flat), which is not coloured")
    rgba, _ = load_hints(h.image)
    luma = frame_luma(film.info, h.frame)
    same = next((k for k, g in enumerate(guides) if g.source == "own" and g.frame == h.frame), None)
    painted = load_rgb(guides[same].image)[0] if same is not None else None
    rgb = hint_exemplar(luma, rgba, _work(film.info, cfg), matrix, painted)
    guide = _store(film, "hints", h.frame, rgb)
    if same is not None:  # one exemplar of that frame: the painted colours plus the hints
        guides[same] = Guide(guide.image, h.frame, guide.sha256, "own")
    else:
        guides.append(guide)


# --- automatic colours ------------------------------------------------------------------

def _add_auto(film, scenes, guides: list[Guide], assigned: dict, matrix: str, cfg: GuidanceConfig) -> None:
    from pipeline.exemplar import descriptor_similarity, luma_descriptor
    from pipeline.model import auto

    colorizer = auto.load()
    seen: list[tuple[np.ndarray, int]] = []  # (descriptor, guide index) of automatic keyframes
    for sc in scenes:
        frame, small = pick_keyframe(film.info, sc, cfg)
        desc = luma_descriptor(small)
        best = max(((descriptor_similarity(desc, d), k) for d, k in seen), default=(0.0, -1))
        if best[0] >= cfg.auto_reuse:
            assigned[sc.scene] = Assignment((best[1],), "auto", round(best[0], 4))
            continue
        luma = frame_luma(film.info, frame)
        work = cv2.resize(luma, _work(film.info, cfg), interpolation=cv2.INTER_AREA)
        rgb = auto_rgb(colorizer, luma, work, matrix)
        guides.append(_store(film, "auto", frame, rgb))
        seen.append((desc, len(guides) - 1))
        assigned[sc.scene] = Assignment((len(guides) - 1,), "auto")
    log.info("%s: automatic colours for %d scene(s) (%d keyframe(s) coloured)", film.film_id, len(scenes),
             len(seen))


def auto_rgb(colorizer, luma: np.ndarray, work: np.ndarray, matrix: str) -> np.ndarray:
    """A frame coloured by the automatic colorizer, with the frame's own luma: luma H x W
    float [0, 1] full resolution, work the same at working resolution -> RGB H x W x 3."""
    from pipeline.colour import rgb_to_ycbcr, ycbcr_to_rgb
    from pipeline.model.upsample import guided_upsample

    c709 = colorizer.chroma(work)  # 2 x h x w, BT.709 (the colorizer's own space)
    if matrix != "bt709":  # its colours expressed in the output's matrix
        c = rgb_to_ycbcr(ycbcr_to_rgb(np.concatenate([work[None], c709]), "bt709"), matrix)[1:]
    else:
        c = c709
    full = guided_upsample(c, work, luma)
    return ycbcr_to_rgb(np.concatenate([luma[None], full]), matrix)


def pick_keyframe(info, scene, cfg: GuidanceConfig) -> tuple[int, np.ndarray]:
    """A sharp, well-exposed frame near the middle of the scene -> (frame, luma at 64x36).
    Candidates spread over the middle 60%; score = sharpness (Laplacian variance) times
    exposure (share of pixels neither crushed nor clipped), ties to the middle."""
    from pipeline.exemplar import MATCH_SIZE
    from pipeline.io import iter_luma, luma_to_float

    n = scene.end_frame - scene.start_frame
    k = max(1, min(cfg.keyframe_candidates, n))
    picks = sorted({scene.start_frame + int(n * (0.2 + 0.6 * (j + 0.5) / k)) for j in range(k)})
    mid = scene.start_frame + (n - 1) / 2
    best = None
    for f in picks:
        for _, y in iter_luma(info, f, f + 1, (160, 90)):
            y = luma_to_float(y, info)
            sharp = float(cv2.Laplacian(y, cv2.CV_32F).var())
            exposed = float(np.mean((y > 0.04) & (y < 0.96)))
            score = (round(sharp * exposed, 6), -abs(f - mid))
            if best is None or score > best[0]:
                best = (score, f, cv2.resize(y, MATCH_SIZE, interpolation=cv2.INTER_AREA))
    if best is None:
        raise RuntimeError(f"scene {scene.scene}: no frame could be decoded for its keyframe")
    return best[1], best[2]


# --- shared -----------------------------------------------------------------------------

def frame_luma(info, frame: int) -> np.ndarray:
    """Frame `frame`'s luma at full resolution, H x W float32 [0, 1]."""
    from pipeline.io import iter_luma, luma_to_float

    for _, y in iter_luma(info, frame, frame + 1):
        return luma_to_float(y, info)
    raise RuntimeError(f"frame {frame} could not be decoded")


def _work(info, cfg: GuidanceConfig) -> tuple[int, int]:
    from pipeline.model.upsample import work_size

    return work_size(info.width, info.height, cfg.max_side)


def _store(film, kind: str, frame: int, rgb: np.ndarray) -> Guide:
    """The derived exemplar as a PNG in the run directory (a colourist can look at it)."""
    bgr = cv2.cvtColor(np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", bgr)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    data = buf.tobytes()
    uri = storage.join(guide_dir(film.run_dir, film.film_id), f"{kind}-{frame:07d}.png")
    storage.makedirs(storage.parent(uri))
    storage.write_bytes(uri, data)
    return Guide(uri, frame, hashlib.sha256(data).hexdigest(), kind)


def flat_frame(info, frame: int) -> bool:
    """Whether a frame is black/flat (p90 - p10 of its luma below the scene scan's
    `flat_spread`): hints there would colour nothing."""
    from pipeline.io import iter_luma, luma_to_float
    from pipeline.scenes import SceneConfig

    for _, y in iter_luma(info, frame, frame + 1, (80, 45)):
        lo, hi = np.percentile(luma_to_float(y, info), [10, 90])
        return bool(hi - lo < SceneConfig().flat_spread)
    return False
