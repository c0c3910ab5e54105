"""Worked solutions to every exercise, for instructors (the notebooks never import this).

Each answer is written the way a student could derive it, with the reasoning in a
comment; ``tests/test_exercises.py`` checks every one against its notebook's checker.
"""
from __future__ import annotations

import math
from functools import reduce
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.tasks import load_corpus
from .nb01 import best_unconditioned_cosine
from .nb06 import unigram_entropy

# -- notebook 00: locking -----------------------------------------------------------------
# 1. Under backprop one step lasts the sum of all forward and backward costs, 1+2+1+2+4+2 = 12;
#    worker 2 is busy for its own 2 + 4 = 6 of them.
NB00_IDLE_FRACTION = 6 / 12
# 2. Update-decoupled makespan 2N + K - 1 against backprop's 2KN: speed-up 2KN / (2N + K - 1);
#    with K = 4 it is 8N / (2N + 3) >= 3 from N = 4.5 on, so N = 5.
NB00_MINIBATCHES_FOR_3X = 5
# 3. Nobody waits, so the makespan is the busiest worker's work: the middle worker runs its forward
#    (1), backward (2), a synthetic-input model and a synthesizer (0.5 each) per minibatch: 4 x 10.
NB00_UNLOCKED_MAKESPAN = 40.0


# -- notebook 01: synthetic gradients on a linear model ------------------------------------
def nb01_exact_cdni(w2: Tensor, b2: Tensor) -> tuple[Tensor, Tensor]:
    """B dL/dh = W2^T (W2 h + b2 - y) = [W2^T W2, -W2^T] [h; y] + W2^T b2."""
    return torch.cat([w2.T @ w2, -w2.T], dim=1), w2.T @ b2


# 2. A synthesizer 1000x slower than the default cannot follow its moving target.
NB01_SLOW_SYNTH_LR = 1e-4


def nb01_best_unconditioned_cosine() -> float:
    """3. Train the default backprop model, fit B dL/dh on [h, 1] by least squares, take the cosine
    (worked out in ``exercises.nb01.best_unconditioned_cosine``)."""
    return best_unconditioned_cosine(seed=0)


# -- notebook 02: deep linear networks -----------------------------------------------------
def nb02_my_cka(x: Tensor, y: Tensor) -> float:
    """Centre each column, then ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)."""
    x, y = x.double() - x.double().mean(0), y.double() - y.double().mean(0)
    return float((y.T @ x).norm() ** 2 / ((x.T @ x).norm() * (y.T @ y).norm()))


# 2. Once B reads h optimally, the error averaged over the labels that share an h is zero.
NB02_TRIVIAL_SOLUTION = "b"


def nb02_dfa_matrix(weights: Sequence[Tensor], k: int) -> Tensor:
    """The gradient at cut k is e W_L ... W_{k+1}: DFA with that product is backprop."""
    return reduce(lambda a, b: a @ b, reversed(list(weights[k:])))


# -- notebook 03: the decoupled MLP --------------------------------------------------------
def nb03_output_gradient(w: Tensor, b: Tensor, h: Tensor, y: Tensor) -> Tensor:
    """B dL/dh = (softmax(z) - onehot(y)) W for z = h W^T + b."""
    z = h @ w.T + b
    return (torch.softmax(z, dim=1) - F.one_hot(y, z.shape[1]).float()) @ w


def nb03_bootstrap_target(layer: nn.Module, synthesizer: nn.Module, h: Tensor) -> Tensor:
    """Run the layer on a copy of h that requires grad, push its synthetic gradient (the
    prediction / batch size) into the output, return the gradient that lands on h."""
    h = h.detach().requires_grad_(True)
    out = layer(h)
    out.backward(synthesizer(out.detach()).detach() / h.shape[0])
    return h.grad


# 3. Stages for ["dni", "backprop", "cdni", "backprop"]: [1], [2, 3], [4, 5]; only the synthesizer
#    at boundary 3 sits under the stage with the output layer.
NB03_TRUE_TARGETS = [3]


# -- notebook 04: unlocking ----------------------------------------------------------------
def nb04_make_input_model(in_dim: int, out_dim: int) -> nn.Module:
    """A small MLP whose output is a ReLU, like the layer outputs it predicts."""
    return nn.Sequential(nn.Linear(in_dim, 128), nn.ReLU(), nn.Linear(128, out_dim), nn.ReLU())


# 2. The two middle workers each run a synthetic-input and a synthesizer model: 1 + 2 + 0.5 + 0.5 = 4
#    per minibatch, against backprop's 4 x (1 + 2) = 12: a speed-up of 3.
NB04_UNLOCKED_SPEEDUP = 3.0


# -- notebook 05: DNI at the truncation boundary -------------------------------------------
def nb05_pairs_within_chunk(length: int, T: int) -> int:
    """Input i at step i, output i at step length + 1 + i: count the pairs in one chunk."""
    return sum(i // T == (length + 1 + i) // T for i in range(length))


# 2. x = g + 0.1 x  =>  x = g / 0.9.
NB05_FIXED_POINT = 1 / 0.9
# 3. Step 0 is in chunk 0, output 0 (step 7) in chunk 3: three boundaries.
NB05_REACH = 3


# -- notebook 06: streams and text ---------------------------------------------------------
def nb06_floor() -> float:
    """1. The symbol repeats with p = 1 - 0.2 + 0.2/8, each other letter has q = 0.2/8."""
    p, q = 1 - 0.2 + 0.2 / 8, 0.2 / 8
    return -(p * math.log2(p) + 7 * q * math.log2(q))


def nb06_min_window(k: int) -> int:
    """2. The chunk must hold both x[t+1-k] and the prediction of x[t+1]: T = k."""
    return k


def nb06_discount(scale: float, n: int) -> float:
    """4. Each boundary multiplies the future's gradient by the scale once."""
    return scale ** n


def nb06_unigram() -> float:
    """3. The entropy of the training split's character frequencies (``nb06.unigram_entropy``)."""
    corpus = load_corpus("shakespeare")
    return unigram_entropy(corpus.train, corpus.vocab)


# -- notebook 07: parallel training --------------------------------------------------------
# 1. Worker 0 is busy 1 + 1 + 2 = 4 ms, worker 1 2 + 4 = 6 ms per minibatch: the slower sets the pace.
NB07_PIPELINE_THROUGHPUT = 64 / 0.006
# 2. K workers share the DNI work evenly: 2 / 1.3.
NB07_BEST_SPEEDUP = 2 / 1.3
# 3. The target for step t - 1 is computed while worker 0 runs step t.
NB07_TARGET_DELAY = 1


# -- notebook 08: two timescales -----------------------------------------------------------
# 1. The most frequent count of six fair bits is three: C(6, 3) = 20 of the 2^6 = 64 windows.
NB08_CHANCE = 20 / 64


def nb08_fast_updates(method: str, K: int, windows: int) -> int:
    """2. Locked: one update per window, after the backward through both; DNI: one per tick;
    the ablation's fast network never gets a gradient."""
    if method == "locked":
        return windows
    return K * windows if method == "dni" else 0


def nb08_window_time(fast_forward: float, fast_backward: float, slow_forward: float,
                     slow_backward: float, synthesizer: float) -> tuple[float, float]:
    """3. Locked: every part waits for the one before (forward up, backward down). Decoupled: the
    fast worker never waits for the slow one, so each worker repeats its own work and the busier
    one sets the pace."""
    locked = fast_forward + slow_forward + slow_backward + fast_backward
    decoupled = max(fast_forward + fast_backward + synthesizer, slow_forward + slow_backward)
    return locked, decoupled
