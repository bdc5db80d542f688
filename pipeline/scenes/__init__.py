"""Scene detection: SSIM + histogram cuts, fades, dissolves and low-variability spans on
downscaled luma, scanned over time ranges in parallel (Ray) with one sequential decision.

    from pipeline.scenes import SceneConfig, Scene, scan_scenes, write_scenes
"""

from .config import SceneConfig
from .export import CSV_COLUMNS, SUPPORTED_EXTENSIONS, write_scenes
from .scan import Scene, scan_scenes

__all__ = ["SceneConfig", "Scene", "scan_scenes", "write_scenes", "CSV_COLUMNS", "SUPPORTED_EXTENSIONS"]
