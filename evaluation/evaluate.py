"""Score a model on a dataset: KITTI AP and COCO mAP of its detections (training's periodic evaluation, eval.py).

Under DDP each rank predicts a strided shard of the frames; detections are gathered and put back in frame order
before scoring, so the result does not depend on how the world size splits the work.
"""
from __future__ import annotations

from evaluation.metrics import evaluate_frames
from evaluation.predict import PredictSettings, predict
from utils.distributed import Dist


def evaluate(model, dataset, settings: PredictSettings, device, dist: Dist = Dist()) -> dict | None:
    """The metrics dict (evaluation/metrics.py) on rank 0, None on other ranks. Leaves the model in eval mode."""
    mine = list(range(dist.rank, len(dataset), dist.world_size))
    frames = {}
    for part in dist.gather(predict(model, dataset, settings, device, mine)):
        frames.update(part)
    if not dist.is_main:
        return None
    order = range(len(dataset))
    return evaluate_frames([dataset.labels[i] for i in order], [frames[i] for i in order], list(dataset.classes))
