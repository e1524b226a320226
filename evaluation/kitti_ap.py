"""The official KITTI 2D detection AP (devkit_object ``cpp/evaluate_object.cpp``, image metric), in numpy.

Semantics follow docs/kitti.md rule by rule: ``cleanData`` (GT ignored at ``height <= MIN_HEIGHT``,
detections at ``int(|y1 - y2|) < MIN_HEIGHT`` tested before their class, Van/Person_sitting neighbours, occluded 3
never valid), ``computeStatistics`` (greedy matching in GT order: pass 1 takes the highest score, pass 2 per
threshold the valid detection with the largest overlap, else the first ignored one; DontCare by intersection over
detection area, ``fp -= nstuff``), ``getThresholds`` (41 recall samples) and the precision envelope; AP|R11 averages
points 0, 4, ..., 40 and AP|R40 points 1..40, x100. ``tests/evaluation/kitti_ap_reference.py`` holds a
loop-by-loop port of the C++ that this vectorised version must match.

The greedy matching is sequential only within a frame, so it runs for all frames and all score thresholds at once:
step k handles the k-th GT (that has candidates) of every frame.

Choices and differences (the devkit and its Python ports differ among themselves):
- Class names match case-insensitively, as ``strcasecmp`` in the C++; a GT object named "dontcare" in any case is a
  DontCare region (the ports match only "DontCare"). DontCare lines of a *result* file are dropped by
  ``data.kitti_labels.read_label_file``; the C++ would keep them as detections of a class "DontCare".
- Every requested class is evaluated, with or without detections (as the ports; the C++ skips undetected classes).
- A difficulty with no counted GT (n_gt = 0) is not evaluable: its AP is ``None`` (JSON null); the C++ and the ports
  report 0. When every detection above a threshold is absorbed (tp + fp = 0) the precision is 0/0 = NaN, as in the
  C++; the envelope then follows ``std::max_element`` (NaN at that entry only; the ports spread it).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data.kitti_labels import FrameLabels
from utils.boxes import np_box_overlap_paired

DIFFICULTIES = ("easy", "moderate", "hard")
MIN_HEIGHT = (40, 25, 25)  # px; GT needs height > this, detections >= this
MAX_OCCLUSION = (0, 1, 2)
MAX_TRUNCATION = (0.15, 0.3, 0.5)
MIN_OVERLAP = {"car": 0.7, "pedestrian": 0.5, "cyclist": 0.5}  # image metric; tested as overlap > MIN_OVERLAP
NEIGHBOUR = {"car": "van", "pedestrian": "person_sitting"}  # GT that may absorb a detection, never TP/FN
N_SAMPLE_PTS = 41
NO_DETECTION = -10000000.0  # the devkit's sentinel: a detection must score above it to be picked in pass 1
OFFICIAL_CLASSES = ("Car", "Pedestrian", "Cyclist")


@dataclass(frozen=True)
class PrCurve:
    """One class at one difficulty, T = number of sampled score thresholds (<= 41).

    Attributes:
        n_gt: counted ground truth (the recall denominator).
        thresholds: (T,) detection scores from ``getThresholds``, descending.
        tp, fp, fn: (T,) int64 totals over all frames at each threshold.
        precision: (41,) float64 envelope; entry i is recall i/40, 0 past the last threshold.
    """

    n_gt: int
    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    precision: np.ndarray

    @property
    def ap11(self) -> float | None:
        """AP|R11 in percent: mean of precision[0, 4, ..., 40] x 100 (None when n_gt = 0)."""
        return sum(self.precision[0::4].tolist()) / 11 * 100 if self.n_gt else None

    @property
    def ap40(self) -> float | None:
        """AP|R40 in percent: mean of precision[1..40] x 100 (None when n_gt = 0)."""
        return sum(self.precision[1:].tolist()) / 40 * 100 if self.n_gt else None


def kitti_ap(gt: list[FrameLabels], dt: list[FrameLabels], classes=OFFICIAL_CLASSES, return_curves: bool = False):
    """KITTI 2D AP of detections ``dt`` against labels ``gt`` (same frame order), in percent.

    Returns:
        ``{cls: {"AP11": {"easy": x, "moderate": x, "hard": x}, "AP40": {...}}}`` with ``x`` a float in [0, 100] or
        None (not evaluable); with ``return_curves`` also ``{cls: {difficulty: PrCurve}}``.
    """
    gt_flat, dt_flat = _flatten_pair(gt, dt)
    curves = {cls: _evaluate_class(gt_flat, dt_flat, cls) for cls in classes}
    ap = {cls: {"AP11": {d: c.ap11 for d, c in per.items()}, "AP40": {d: c.ap40 for d, c in per.items()}}
          for cls, per in curves.items()}
    return (ap, curves) if return_curves else ap


def evaluate_class(gt: list[FrameLabels], dt: list[FrameLabels], cls: str) -> dict[str, PrCurve]:
    """The devkit's ``eval_class`` for one class (Car, Pedestrian or Cyclist, any case) at the three difficulties."""
    return _evaluate_class(*_flatten_pair(gt, dt), cls)


def _flatten_pair(gt: list[FrameLabels], dt: list[FrameLabels]) -> tuple[dict, dict]:
    if len(gt) != len(dt):
        raise ValueError(f"{len(gt)} ground-truth frames but {len(dt)} detection frames")
    return _flatten(gt, scored=False), _flatten(dt, scored=True)


def _evaluate_class(gt: dict, dt: dict, cls: str) -> dict[str, PrCurve]:
    key = cls.lower()
    if key not in MIN_OVERLAP:
        raise ValueError(f"KITTI evaluates {', '.join(OFFICIAL_CLASSES)} only, got class {cls!r}")
    with np.errstate(invalid="ignore", divide="ignore"):  # zero-area boxes: NaN overlap compares False, as C++'s 0
        data = _ClassData.build(gt, dt, key)
    return {name: _evaluate_difficulty(data, d) for d, name in enumerate(DIFFICULTIES)}


def get_thresholds(scores: np.ndarray, n_gt: int) -> np.ndarray:
    """``getThresholds``: the TP scores of pass 1 -> at most 41 scores at recall ~ 0, 1/40, ..., 1 (descending)."""
    v = sorted(np.asarray(scores, np.float64).tolist(), reverse=True)
    picked, current_recall = [], 0.0
    for i, score in enumerate(v):
        l_recall = (i + 1) / n_gt
        r_recall = (i + 2) / n_gt if i < len(v) - 1 else l_recall
        if (r_recall - current_recall) < (current_recall - l_recall) and i < len(v) - 1:
            continue
        picked.append(score)
        current_recall += 1.0 / (N_SAMPLE_PTS - 1.0)
    return np.array(picked, dtype=np.float64)


def precision_envelope(tp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """(T,) totals -> (41,) ``precision[i] = max_element(precision[i:])``, zero past T; 0/0 stays NaN as in C++."""
    if len(tp) > N_SAMPLE_PTS:
        raise AssertionError(f"{len(tp)} thresholds, the devkit's precision vector holds {N_SAMPLE_PTS}")
    precision = np.zeros(N_SAMPLE_PTS)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision[:len(tp)] = tp / (tp + fp).astype(np.float64)
    # std::max_element keeps a NaN first element and skips later NaNs: fmax ignores NaN, then restore entry i's NaN.
    suffix_max = np.fmax.accumulate(precision[::-1])[::-1]
    return np.where(np.isnan(precision), np.nan, suffix_max)


def _flatten(frames: list[FrameLabels], scored: bool) -> dict:
    """All frames' objects as flat arrays in frame then file order; ``frame`` (K,) maps each object to its frame."""
    names = np.array([n.lower() for f in frames for n in f.names], dtype=object)
    frame = np.repeat(np.arange(len(frames)), [len(f) for f in frames])

    def cat(get, shape):
        parts = [np.asarray(get(f), np.float64).reshape(shape) for f in frames]
        return np.concatenate(parts) if parts else np.zeros((0,) + shape[1:])

    if scored and any(f.scores is None for f in frames):
        raise ValueError("detection frames need scores (read result files with results=True)")
    out = {"names": names, "frame": frame, "boxes": cat(lambda f: f.boxes, (-1, 4)), "n_frames": len(frames),
           "scores": cat(lambda f: f.scores, (-1,)) if scored else None,
           "truncated": cat(lambda f: f.truncated, (-1,)), "occluded": cat(lambda f: f.occluded, (-1,))}
    if scored and not np.isfinite(out["scores"]).all():
        raise ValueError("detection scores must be finite (NaN/inf cannot be ranked)")
    dc_named = names == "dontcare"  # strcasecmp: a "dontcare" object in the names list is a DontCare region too
    dc_frame = np.concatenate([np.repeat(np.arange(len(frames)), [len(f.dontcare) for f in frames]), frame[dc_named]])
    dc_boxes = np.concatenate([cat(lambda f: f.dontcare, (-1, 4)), out["boxes"][dc_named]])
    order = np.argsort(dc_frame, kind="stable")
    out["dc_frame"], out["dc_boxes"] = dc_frame[order], dc_boxes[order]
    return out


def _same_frame_pairs(frame_a: np.ndarray, frame_b: np.ndarray, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (a, b) index pair in the same frame, ordered by a then b; both inputs sorted by frame."""
    count_b = np.bincount(frame_b, minlength=n_frames)
    start_b = np.cumsum(count_b) - count_b
    reps = count_b[frame_a]
    ia = np.repeat(np.arange(len(frame_a)), reps)
    offset = np.arange(len(ia)) - np.repeat(np.cumsum(reps) - reps, reps)
    return ia, start_b[frame_a[ia]] + offset


@dataclass(frozen=True)
class _ClassData:
    """What one class needs at every difficulty: its G candidate GT, D candidate detections, P (GT, det) pairs."""

    min_overlap: float
    gt_frame: np.ndarray  # (G,) frame of each class or neighbour-class GT, in frame then file order
    gt_class: np.ndarray  # (G,) 1 evaluated class, 0 neighbour class
    gt_height: np.ndarray  # (G,) y2 - y1 (double, as cleanData)
    gt_occluded: np.ndarray
    gt_truncated: np.ndarray
    det_class: np.ndarray  # (D,) bool, detection of the evaluated class (else kept only for its small height)
    det_height: np.ndarray  # (D,) int32(fabs(y1 - y2)), held as float
    det_score: np.ndarray
    det_in_dc: np.ndarray  # (D,) bool, overlap_first(det, some DontCare) > min_overlap
    pair_gt: np.ndarray  # (P,) pairs with IoU > min_overlap, sorted by GT
    pair_det: np.ndarray
    pair_overlap: np.ndarray

    @staticmethod
    def build(gt: dict, dt: dict, key: str) -> _ClassData:
        gt_class = np.where(gt["names"] == key, 1, np.where(gt["names"] == NEIGHBOUR.get(key), 0, -1))
        g = np.flatnonzero(gt_class >= 0)
        det_height = np.trunc(np.abs(dt["boxes"][:, 1] - dt["boxes"][:, 3]))
        det_class = dt["names"] == key
        # A detection of another class matters only while too small (ignored_det = 1), i.e. at some difficulty.
        d = np.flatnonzero(det_class | (det_height < max(MIN_HEIGHT)))
        gt_boxes, det_boxes, m = gt["boxes"][g], dt["boxes"][d], MIN_OVERLAP[key]
        pg, pd = _same_frame_pairs(gt["frame"][g], dt["frame"][d], gt["n_frames"])
        overlap = np_box_overlap_paired(det_boxes[pd], gt_boxes[pg])  # the C++ calls boxoverlap(det, gt)
        keep = overlap > m
        dets_c, dc = np.flatnonzero(det_class[d]), np.zeros(len(d), dtype=bool)
        di, ci = _same_frame_pairs(dt["frame"][d][dets_c], gt["dc_frame"], gt["n_frames"])
        inside = np_box_overlap_paired(det_boxes[dets_c][di], gt["dc_boxes"][ci], denominator="first") > m
        dc[dets_c[np.unique(di[inside])]] = True
        return _ClassData(m, gt["frame"][g], gt_class[g], gt_boxes[:, 3] - gt_boxes[:, 1], gt["occluded"][g],
                          gt["truncated"][g], det_class[d], det_height[d], dt["scores"][d], dc,
                          pg[keep], pd[keep], overlap[keep])


def _evaluate_difficulty(data: _ClassData, diff: int) -> PrCurve:
    """``cleanData`` flags for one difficulty, pass 1 -> thresholds, pass 2 -> TP/FP/FN -> precision envelope."""
    ignore = ((data.gt_occluded > MAX_OCCLUSION[diff]) | (data.gt_truncated > MAX_TRUNCATION[diff])
              | (data.gt_height <= MIN_HEIGHT[diff]))
    counted = (data.gt_class == 1) & ~ignore  # ignored_gt 0; every other kept GT is ignored_gt 1
    ign_det = np.where(data.det_height < MIN_HEIGHT[diff], 1, np.where(data.det_class, 0, -1))
    live = ign_det[data.pair_det] != -1
    pg, pd, ov = data.pair_gt[live], data.pair_det[live], data.pair_overlap[live]
    score = data.det_score
    # Pass 1: highest score first (ties: lower detection index), valid and ignored detections alike.
    order = np.lexsort((pd, -score[pd], pg))
    match = _greedy_match(pg[order], pd[order], data.gt_frame, (score > NO_DETECTION)[None])
    tp_gt = (_matched_flag(match, ign_det == 0) & counted)[0]
    thresholds = get_thresholds(score[match[0, tp_gt]], int(counted.sum())) if counted.any() else np.zeros(0)
    # Pass 2: valid detections by largest overlap (ties: lower index), then ignored ones by index.
    valid_pair = ign_det[pd] == 0
    order = np.lexsort((pd, np.where(valid_pair, -ov, 0.0), ~valid_pair, pg))
    available = score[None, :] >= thresholds[:, None]  # (T, D): ignored_threshold is score < thresh
    match = _greedy_match(pg[order], pd[order], data.gt_frame, available)  # (T, G)
    tp = (_matched_flag(match, ign_det == 0) & counted).sum(1)
    fn = ((match < 0) & counted).sum(1)
    # FP: valid detections above the threshold, neither assigned to a GT nor inside a DontCare region.
    fp_pool = (ign_det == 0) & ~data.det_in_dc
    pool_scores = np.sort(score[fp_pool])
    above = len(pool_scores) - np.searchsorted(pool_scores, thresholds, side="left")
    fp = above - _matched_flag(match, fp_pool).sum(1)
    return PrCurve(int(counted.sum()), thresholds, tp.astype(np.int64), fp.astype(np.int64), fn.astype(np.int64),
                   precision_envelope(tp, fp))


def _matched_flag(match: np.ndarray, det_flag: np.ndarray) -> np.ndarray:
    """(T, G) matched detection index or -1, (D,) bool -> (T, G) bool: matched to a detection with the flag."""
    out = np.zeros(match.shape, dtype=bool)
    hit = match >= 0
    out[hit] = det_flag[match[hit]]
    return out


def _greedy_match(pair_gt: np.ndarray, pair_det: np.ndarray, gt_frame: np.ndarray, available: np.ndarray):
    """Greedy GT-order assignment, for T score thresholds at once.

    Args:
        pair_gt, pair_det: (P,) candidate pairs, grouped by GT in GT order, in preference order within each GT.
        gt_frame: (G,) frame of each GT, nondecreasing.
        available: (T, D) bool, detection above threshold t (T = 1 and all True for pass 1).
    Returns:
        (T, G) int64: the detection each GT takes at each threshold, -1 for none.
    """
    n_t = available.shape[0]
    match = np.full((n_t, len(gt_frame)), -1, dtype=np.int64)
    gts, first_pair = np.unique(pair_gt, return_index=True)
    # Rank of each GT among the GTs of its frame that have candidates; rank-k GTs of different frames are independent.
    rank = np.arange(len(gts)) - np.searchsorted(gt_frame[gts], gt_frame[gts], side="left")
    pair_rank = np.repeat(rank, np.diff(np.append(first_pair, len(pair_gt))))
    by_rank = np.argsort(pair_rank, kind="stable")
    bounds = np.searchsorted(pair_rank[by_rank], np.arange(rank.max() + 2 if len(rank) else 1))
    taken = np.zeros(available.shape, dtype=bool)
    for k in range(len(bounds) - 1):
        sel = by_rank[bounds[k]:bounds[k + 1]]
        g, d = pair_gt[sel], pair_det[sel]
        starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
        free = available[:, d] & ~taken[:, d]  # (T, S)
        first = np.minimum.reduceat(np.where(free, np.arange(len(sel)), len(sel)), starts, axis=1)  # (T, G_k)
        t_idx, j = np.nonzero(first < len(sel))
        chosen = d[first[t_idx, j]]
        taken[t_idx, chosen] = True
        match[t_idx, g[starts[j]]] = chosen
    return match
