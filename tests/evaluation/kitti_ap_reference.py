"""The slow reference for tests/evaluation/test_kitti_ap.py: evaluate_object.cpp (cleanData, computeStatistics,
getThresholds, eval_class) ported loop by loop, with none of evaluation/kitti_ap.py's vectorisation."""
import math

import numpy as np

from utils.boxes import np_box_overlap

MIN_HEIGHT, MAX_OCCLUSION, MAX_TRUNCATION = (40, 25, 25), (0, 1, 2), (0.15, 0.3, 0.5)
MIN_OVERLAP = {"car": 0.7, "pedestrian": 0.5, "cyclist": 0.5}


def ref_clean_data(cls, gt, det, diff):
    ignored_gt, ignored_det, n_gt = [], [], 0
    for i, name in enumerate(gt.names):
        height = gt.boxes[i, 3] - gt.boxes[i, 1]
        if name.lower() == cls:
            valid_class = 1
        elif (cls, name.lower()) in (("pedestrian", "person_sitting"), ("car", "van")):
            valid_class = 0
        else:
            valid_class = -1
        ignore = (gt.occluded[i] > MAX_OCCLUSION[diff] or gt.truncated[i] > MAX_TRUNCATION[diff]
                  or height <= MIN_HEIGHT[diff])
        if valid_class == 1 and not ignore:
            ignored_gt.append(0)
            n_gt += 1
        elif valid_class == 0 or (ignore and valid_class == 1):
            ignored_gt.append(1)
        else:
            ignored_gt.append(-1)
    for i, name in enumerate(det.names):
        height = int(abs(det.boxes[i, 1] - det.boxes[i, 3]))
        ignored_det.append(1 if height < MIN_HEIGHT[diff] else 0 if name.lower() == cls else -1)
    return ignored_gt, ignored_det, n_gt


def ref_compute_statistics(cls, gt, det, ignored_gt, ignored_det, compute_fp, thresh=0.0):
    tp = fp = fn = 0
    v = []
    min_overlap = MIN_OVERLAP[cls]
    overlaps = np_box_overlap(det.boxes, gt.boxes)  # [j, i] = boxoverlap(det[j], gt[i], -1)
    assigned = [False] * len(det)
    ignored_threshold = [compute_fp and det.scores[j] < thresh for j in range(len(det))]
    for i in range(len(gt)):
        if ignored_gt[i] == -1:
            continue
        det_idx, valid_detection, max_overlap, assigned_ignored_det = -1, -10000000.0, 0.0, False
        for j in range(len(det)):
            if ignored_det[j] == -1 or assigned[j] or ignored_threshold[j]:
                continue
            overlap = overlaps[j, i]
            if not compute_fp and overlap > min_overlap and det.scores[j] > valid_detection:
                det_idx, valid_detection = j, det.scores[j]
            elif (compute_fp and overlap > min_overlap and (overlap > max_overlap or assigned_ignored_det)
                  and ignored_det[j] == 0):
                max_overlap, det_idx, valid_detection, assigned_ignored_det = overlap, j, 1, False
            elif compute_fp and overlap > min_overlap and valid_detection == -10000000.0 and ignored_det[j] == 1:
                det_idx, valid_detection, assigned_ignored_det = j, 1, True
        if valid_detection == -10000000.0 and ignored_gt[i] == 0:
            fn += 1
        elif valid_detection != -10000000.0 and (ignored_gt[i] == 1 or ignored_det[det_idx] == 1):
            assigned[det_idx] = True
        elif valid_detection != -10000000.0:
            tp += 1
            v.append(det.scores[det_idx])
            assigned[det_idx] = True
    if compute_fp:
        fp = sum(not (assigned[j] or ignored_det[j] in (-1, 1) or ignored_threshold[j]) for j in range(len(det)))
        dc = np.concatenate([gt.dontcare, gt.boxes[[n.lower() == "dontcare" for n in gt.names]]])
        dc_overlaps = np_box_overlap(det.boxes, dc, denominator="first")
        nstuff = 0
        for i in range(len(dc)):
            for j in range(len(det)):
                if assigned[j] or ignored_det[j] in (-1, 1) or ignored_threshold[j]:
                    continue
                if dc_overlaps[j, i] > min_overlap:
                    assigned[j] = True
                    nstuff += 1
        fp -= nstuff
    return tp, fp, fn, v


def ref_get_thresholds(v, n_groundtruth):
    v = sorted(v, reverse=True)
    t, current_recall = [], 0.0
    for i in range(len(v)):
        l_recall = (i + 1) / n_groundtruth
        r_recall = (i + 2) / n_groundtruth if i < len(v) - 1 else l_recall
        if (r_recall - current_recall) < (current_recall - l_recall) and i < len(v) - 1:
            continue
        t.append(v[i])
        current_recall += 1.0 / (41 - 1.0)
    return t


def ref_max_element(values):
    largest = values[0]
    for x in values[1:]:
        if largest < x:
            largest = x
    return largest


def ref_eval_class(cls, gt_frames, dt_frames, diff):
    """-> thresholds, per-threshold [tp, fp, fn], AP11 and AP40 in percent (None when n_gt = 0)."""
    cls, n_gt, v, flags = cls.lower(), 0, [], []
    for gt, det in zip(gt_frames, dt_frames):
        ignored_gt, ignored_det, n = ref_clean_data(cls, gt, det, diff)
        n_gt += n
        flags.append((ignored_gt, ignored_det))
        v += ref_compute_statistics(cls, gt, det, ignored_gt, ignored_det, False)[3]
    thresholds = ref_get_thresholds(v, n_gt) if n_gt else []
    pr = [[0, 0, 0] for _ in thresholds]
    for (gt, det), (ignored_gt, ignored_det) in zip(zip(gt_frames, dt_frames), flags):
        for t, thresh in enumerate(thresholds):
            tp, fp, fn, _ = ref_compute_statistics(cls, gt, det, ignored_gt, ignored_det, True, thresh)
            pr[t] = [pr[t][0] + tp, pr[t][1] + fp, pr[t][2] + fn]
    precision = [0.0] * 41
    for i, (tp, fp, _) in enumerate(pr):
        precision[i] = tp / (tp + fp) if tp + fp else math.nan
    for i in range(len(thresholds)):
        precision[i] = ref_max_element(precision[i:])
    aps = (sum(precision[0::4]) / 11 * 100, sum(precision[1:]) / 40 * 100) if n_gt else (None, None)
    return thresholds, pr, *aps
