"""Comparing what layers represent: linear CKA and linear probes.

Two networks can compute the same function with very different hidden
layers. Two read-outs make "different" measurable:

* linear CKA (centred kernel alignment, Kornblith et al. 2019) between two
  representations of the same inputs: 1 when one is a rotation and/or uniform
  scaling of the other, near 0 when they share no linear structure;
* a linear probe: how well a linear classifier fit on a layer's activations
  predicts the labels, i.e. how much of the task a layer makes linearly readable;
* Czarnecki et al.'s own measure: a layer's representational dissimilarity
  matrix (RDM, 1 - the correlation between every two examples' activations) and
  its distance to another layer's RDM (1 - the correlation of the two matrices'
  upper triangles). CKA is a substitute for it; both are computed here.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..validate import check_float


def linear_cka(x: Tensor, y: Tensor) -> float:
    """Linear CKA between ``x`` ``[n, d1]`` and ``y`` ``[n, d2]`` (same n inputs, same order).

    ``||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)`` on column-centred data;
    invariant to orthogonal transforms and isotropic scaling of either side.
    """
    if x.dim() != 2 or y.dim() != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must be [n, d] matrices with the same n, got "
                         f"{list(x.shape)} and {list(y.shape)}")
    if x.shape[0] < 2:
        raise ValueError("linear_cka needs at least 2 examples")
    x = x.detach().double()
    y = y.detach().double()
    x = x - x.mean(0)
    y = y - y.mean(0)
    cross = (y.T @ x).pow(2).sum()
    norm = (x.T @ x).norm() * (y.T @ y).norm()
    if norm == 0:
        return 0.0
    return float(cross / norm)


def linear_probe(features: Tensor, labels: Tensor, features_test: Tensor, labels_test: Tensor,
                 ridge: float = 1e-3) -> float:
    """Test accuracy (percent) of a ridge-regression classifier (one-hot targets) fit on ``features``.

    Closed form and deterministic, so a probe costs one small linear solve.
    Features are standardised with the training statistics first.
    """
    check_float("ridge", ridge, 0.0, low_open=True)
    if features.dim() != 2 or features.shape[0] != labels.shape[0]:
        raise ValueError("features must be [n, d] with one label per row")
    if features_test.dim() != 2 or features_test.shape[1] != features.shape[1] \
            or features_test.shape[0] != labels_test.shape[0]:
        raise ValueError("features_test must be [m, d] (same d) with one label per row")
    f, ft = features.detach().double(), features_test.detach().double()
    mean, std = f.mean(0), f.std(0) + 1e-8
    f, ft = (f - mean) / std, (ft - mean) / std
    f = torch.cat([f, torch.ones(len(f), 1, dtype=f.dtype)], 1)
    ft = torch.cat([ft, torch.ones(len(ft), 1, dtype=ft.dtype)], 1)
    classes = int(max(labels.max(), labels_test.max())) + 1
    target = torch.nn.functional.one_hot(labels.long(), classes).double()
    eye = torch.eye(f.shape[1], dtype=f.dtype)
    w = torch.linalg.solve(f.T @ f + ridge * len(f) * eye, f.T @ target)
    return 100.0 * float(((ft @ w).argmax(1) == labels_test.long()).double().mean())


def dissimilarity_matrix(x: Tensor) -> Tensor:
    """The RDM of ``x`` ``[n, d]``: ``1 - corr(x_i, x_j)`` for every two examples (``[n, n]``)."""
    if x.dim() != 2 or x.shape[0] < 2:
        raise ValueError(f"x must be an [n, d] matrix with n >= 2, got {list(x.shape)}")
    x = x.detach().double()
    x = x - x.mean(1, keepdim=True)
    x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return 1.0 - x @ x.T


def rdm_distance(x: Tensor, y: Tensor) -> float:
    """1 - the Pearson correlation of the upper triangles of ``x``'s and ``y``'s RDMs (0: same
    geometry of the examples, 1: unrelated); the two must hold the same examples in the same order."""
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must hold the same examples, got {x.shape[0]} and {y.shape[0]}")
    a, b = dissimilarity_matrix(x), dissimilarity_matrix(y)
    upper = torch.triu_indices(a.shape[0], a.shape[0], offset=1)
    u, v = a[upper[0], upper[1]], b[upper[0], upper[1]]
    u, v = u - u.mean(), v - v.mean()
    norm = u.norm() * v.norm()
    return 1.0 if norm == 0 else float(1.0 - (u @ v) / norm)
