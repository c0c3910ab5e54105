"""Sequence tasks for recurrent DNI: copy, repeat copy, a planted dependency, text.

Every task hands the trainer a ``SequenceBatch``: time-major ``inputs``,
``targets`` and a ``mask`` saying which steps carry a loss. The trainer in
``recurrent.py`` does not care which task made it.

* **Copy** and **repeat copy** (Graves et al. 2014): read N random binary
  vectors, see a delimiter, then write them back (R times for repeat copy).
  ``Curriculum`` grows N as in Jaderberg et al. 2016: start at 1, add one when
  the average error falls below 0.15 bits per output step.
* **Planted dependency**: a symbol stream where ``x[t]`` repeats ``x[t - k]``
  with probability ``1 - noise`` and is uniform otherwise. The best possible
  bits per symbol is known in closed form (``planted_entropy``), and a model
  can only reach it by carrying information across k steps.
* **Window count** (notebook 08): a stream of random bits cut into windows
  of m steps; the answer for each window is how many ones it holds. The
  best constant guess is right ``count_chance(m)`` of the time.
* **Character corpus**: the shipped public-domain text (checked against its
  sha256) or any text file, split into train / validation / test.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ..validate import check_float, check_int

DATA_DIR = Path(__file__).resolve().parents[2] / "data"
SHAKESPEARE = "shakespeare_tragedies.txt"
SHAKESPEARE_SHA256 = "10d8e980b7e26e60e86eee52692ef4ef87ff06b58fac9b2f3bb993199f7fcb54"
CORPORA = {"shakespeare": (SHAKESPEARE, SHAKESPEARE_SHA256)}


@dataclass
class SequenceBatch:
    """Time-major batch: ``inputs [L, B, in]``, ``targets [L, B, ...]``, ``mask [L, B]``.

    ``targets`` are floats of shape ``[L, B, bits]`` for bit tasks and class
    indices of shape ``[L, B]`` for symbol tasks; ``mask`` is 1 where a step's
    loss counts.
    """

    inputs: Tensor
    targets: Tensor
    mask: Tensor

    def __len__(self) -> int:
        return self.inputs.shape[0]


# -- copy and repeat copy -------------------------------------------------------------
def copy_batch(length: int, batch_size: int = 16, bits: int = 8,
               generator: torch.Generator | None = None) -> SequenceBatch:
    """The copy task: N random bit vectors, a delimiter, then N steps to write them back.

    Input channels: ``bits`` data bits and one delimiter flag. The sequence has
    ``2 * length + 1`` steps; the loss counts only on the last ``length``.
    """
    check_int("length", length, 1)
    check_int("batch_size", batch_size, 1)
    check_int("bits", bits, 1)
    return _copy(length, 1, 1, batch_size, bits, generator)


def repeat_copy_batch(length: int, repeats: int = 2, batch_size: int = 16, bits: int = 8,
                      max_repeats: int = 4,
                      generator: torch.Generator | None = None) -> SequenceBatch:
    """Repeat copy: N random bit vectors, a delimiter carrying R, then R copies.

    Input channels: ``bits`` data bits, a delimiter flag and the repeat count
    ``R / max_repeats`` (shown on the delimiter step). ``(R + 1) * length + 1`` steps.
    """
    check_int("length", length, 1)
    check_int("max_repeats", max_repeats, 1)
    check_int("repeats", repeats, 1, max_repeats)
    check_int("batch_size", batch_size, 1)
    check_int("bits", bits, 1)
    return _copy(length, repeats, max_repeats, batch_size, bits, generator, repeat_channel=True)


def _copy(length: int, repeats: int, max_repeats: int, batch_size: int, bits: int,
          generator: torch.Generator | None, repeat_channel: bool = False) -> SequenceBatch:
    steps = (repeats + 1) * length + 1
    channels = bits + 1 + int(repeat_channel)
    data = torch.randint(0, 2, (length, batch_size, bits), generator=generator).float()
    inputs = torch.zeros(steps, batch_size, channels)
    inputs[:length, :, :bits] = data
    inputs[length, :, bits] = 1.0
    if repeat_channel:
        inputs[length, :, bits + 1] = repeats / max_repeats
    targets = torch.zeros(steps, batch_size, bits)
    targets[length + 1:] = data.repeat(repeats, 1, 1)
    mask = torch.zeros(steps, batch_size)
    mask[length + 1:] = 1.0
    return SequenceBatch(inputs, targets, mask)


class Curriculum:
    """Grow the sequence length when the model has solved the current one.

    ``update(error)`` takes one training batch's error (bits per output step).
    Once ``window`` errors have been seen at the current level and their mean
    is below ``threshold``, the level rises by one and the window starts over.
    ``longest_solved`` is the last level that met the threshold (0 if none).
    """

    def __init__(self, threshold: float = 0.15, window: int = 10, start: int = 1,
                 max_level: int = 1000) -> None:
        self.threshold = check_float("threshold", threshold, 0.0, low_open=True)
        self.window = check_int("window", window, 1)
        self.level = check_int("start", start, 1)
        self.max_level = check_int("max_level", max_level, start)
        self.longest_solved = start - 1
        self._errors: list[float] = []

    def update(self, error: float) -> bool:
        """Record one batch's error; return True if the level went up."""
        check_float("error", error, 0.0)
        self._errors.append(error)
        if len(self._errors) > self.window:
            self._errors.pop(0)
        if len(self._errors) == self.window and self.mean_error < self.threshold:
            self.longest_solved = self.level
            self.level = min(self.level + 1, self.max_level)
            self._errors = []
            return True
        return False

    @property
    def mean_error(self) -> float:
        """Mean error over the current window (inf before the first batch)."""
        return sum(self._errors) / len(self._errors) if self._errors else math.inf


# -- planted dependency -----------------------------------------------------------------
def planted_entropy(vocab: int, noise: float) -> float:
    """Bits per symbol of the best predictor of ``x[t]`` given ``x[t - k]``.

    With probability ``1 - noise`` the symbol repeats, otherwise it is uniform
    over ``vocab`` symbols, so it repeats with ``p = 1 - noise + noise / vocab``
    and is each other symbol with ``q = noise / vocab``:
    ``H = -p log2 p - (vocab - 1) q log2 q``.
    """
    check_int("vocab", vocab, 2)
    check_float("noise", noise, 0.0, 1.0)
    p, q = 1.0 - noise + noise / vocab, noise / vocab
    return -_xlog2x(p) - (vocab - 1) * _xlog2x(q)


def _xlog2x(p: float) -> float:
    return p * math.log2(p) if p > 0 else 0.0


def planted_stream(steps: int, batch_size: int = 16, k: int = 5, noise: float = 0.1,
                   vocab: int = 4, generator: torch.Generator | None = None) -> Tensor:
    """``batch_size`` symbol streams of ``steps`` symbols, shape ``[steps, batch_size]``.

    The first k symbols are uniform; after that ``x[t] = x[t - k]`` with
    probability ``1 - noise`` and a uniform symbol otherwise.
    """
    check_int("steps", steps, 1)
    check_int("batch_size", batch_size, 1)
    check_int("k", k, 1)
    check_float("noise", noise, 0.0, 1.0)
    check_int("vocab", vocab, 2)
    fresh = torch.randint(0, vocab, (steps, batch_size), generator=generator)
    keep = torch.rand(steps, batch_size, generator=generator) >= noise
    x = fresh.clone()
    for t in range(k, steps):
        x[t] = torch.where(keep[t], x[t - k], fresh[t])
    return x


# -- the window count (notebook 08) ----------------------------------------------------
def count_stream(windows: int, m: int, batch_size: int = 32,
                 generator: torch.Generator | None = None) -> Tensor:
    """``batch_size`` streams of random bits, ``windows`` windows of ``m`` bits: ``[windows, m, batch_size]``."""
    check_int("windows", windows, 1)
    check_int("m", m, 1)
    check_int("batch_size", batch_size, 1)
    return torch.randint(0, 2, (windows, m, batch_size), generator=generator).float()


def window_counts(bits: Tensor) -> Tensor:
    """The number of ones in each window of ``bits [windows, m, batch]``: labels ``[windows, batch]``."""
    if not isinstance(bits, Tensor) or bits.dim() != 3:
        raise ValueError(f"bits must be a tensor [windows, m, batch], got "
                         f"{getattr(bits, 'shape', type(bits).__name__)}")
    if not bool(((bits == 0) | (bits == 1)).all()):
        raise ValueError("bits must hold only 0 and 1")
    return bits.sum(dim=1).long()


def count_chance(m: int) -> float:
    """Accuracy of always answering the most frequent count of m fair bits: C(m, m//2) / 2^m."""
    check_int("m", m, 1)
    return math.comb(m, m // 2) / 2 ** m


# -- symbol streams (planted or text) as batches -------------------------------------
def symbol_batch(symbols: Tensor, vocab: int, start: int = 0) -> SequenceBatch:
    """Next-symbol prediction on ``symbols [L + 1, B]``: one-hot inputs, index targets.

    ``start`` masks out the first steps (for the planted task: the k steps
    before any dependency exists).
    """
    check_int("vocab", vocab, 1)
    check_int("start", start, 0)
    if symbols.dim() != 2 or symbols.shape[0] < 2:
        raise ValueError(f"symbols must have shape [L + 1, batch] with L >= 1, "
                         f"got {list(symbols.shape)}")
    inputs = F.one_hot(symbols[:-1], vocab).float()
    targets = symbols[1:]
    mask = torch.ones(targets.shape)
    mask[:max(0, start - 1)] = 0.0      # target index t + 1 < start has no dependency
    return SequenceBatch(inputs, targets, mask)


def batchify(tokens: Tensor, batch_size: int) -> Tensor:
    """Cut a 1-D token tensor into ``batch_size`` parallel streams ``[L, batch_size]``."""
    check_int("batch_size", batch_size, 1)
    length = tokens.numel() // batch_size
    if length < 2:
        raise ValueError(f"batch_size={batch_size} is too large for {tokens.numel()} tokens")
    return tokens[:length * batch_size].view(batch_size, length).t().contiguous()


# -- character corpus -------------------------------------------------------------------
@dataclass
class Corpus:
    """A character corpus: its alphabet and fixed train / validation / test splits (90/5/5)."""

    name: str
    chars: str
    train: Tensor
    valid: Tensor
    test: Tensor

    @property
    def vocab(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> Tensor:
        index = {c: i for i, c in enumerate(self.chars)}
        unknown = sorted(set(text) - set(index))
        if unknown:
            raise ValueError(f"text contains characters outside the corpus alphabet: {unknown[:5]}")
        return torch.tensor([index[c] for c in text], dtype=torch.long)

    def decode(self, tokens: Tensor | list[int]) -> str:
        return "".join(self.chars[int(i)] for i in tokens)


def load_corpus(source: str = "shakespeare", sha256: str | None = None,
                max_chars: int | None = None) -> Corpus:
    """Load a character corpus and split it 90 / 5 / 5 (train / validation / test).

    ``source`` is a shipped corpus name (``"shakespeare"``: verified against
    the sha256 in data/README.md) or a path to any UTF-8 text file (verified
    only if ``sha256`` is given). ``max_chars`` keeps only the start of the text.
    A checksum mismatch raises ``ValueError``: the numbers in the notebooks
    are only comparable on the same bytes.
    """
    if not isinstance(source, (str, Path)):
        raise ValueError(f"source must be one of {list(CORPORA)} or a file path, got {source!r}")
    if max_chars is not None:
        check_int("max_chars", max_chars, 100)
    if str(source) in CORPORA:
        name = str(source)
        filename, expected = CORPORA[name]
        path = DATA_DIR / filename
        expected = sha256 or expected
    else:
        path, name, expected = Path(source), Path(source).name, sha256
    if not path.is_file():
        raise ValueError(f"source must be one of {list(CORPORA)} or an existing text file, "
                         f"got {str(source)!r}")
    raw = path.read_bytes()
    if expected is not None:
        actual = hashlib.sha256(raw).hexdigest()
        if actual != expected.lower():
            raise ValueError(f"sha256 mismatch for {path}: expected {expected}, got {actual}; "
                             "the file is not the one the course was calibrated on")
    text = raw.decode("utf-8")
    if max_chars is not None:
        text = text[:max_chars]
    if len(text) < 100:
        raise ValueError(f"the corpus needs at least 100 characters, {path} has {len(text)}")
    chars = "".join(sorted(set(text)))
    index = {c: i for i, c in enumerate(chars)}
    tokens = torch.tensor([index[c] for c in text], dtype=torch.long)
    n = tokens.numel()
    a, b = int(0.9 * n), int(0.95 * n)
    return Corpus(name, chars, tokens[:a], tokens[a:b], tokens[b:])
