import math

import pytest
import torch

from dni_lite.data.datasets import file_sha256
from dni_lite.data.tasks import (SHAKESPEARE_SHA256, Curriculum, batchify, copy_batch, load_corpus,
                            planted_entropy, planted_stream, repeat_copy_batch,
                            symbol_batch, DATA_DIR, SHAKESPEARE)


def test_copy_batch_layout():
    b = copy_batch(3, batch_size=2, bits=4, generator=torch.Generator().manual_seed(0))
    assert b.inputs.shape == (7, 2, 5) and b.targets.shape == (7, 2, 4) and b.mask.shape == (7, 2)
    assert torch.equal(b.targets[4:], b.inputs[:3, :, :4])          # outputs copy the inputs
    assert b.inputs[3, :, 4].eq(1).all() and b.inputs[:, :, 4].sum() == 2   # one delimiter each
    assert b.mask[:4].sum() == 0 and b.mask[4:].eq(1).all()
    assert b.inputs[4:].abs().sum() == 0                               # nothing shown while writing


def test_repeat_copy_batch_layout():
    b = repeat_copy_batch(2, repeats=3, batch_size=2, bits=3, max_repeats=4)
    assert b.inputs.shape == (9, 2, 5) and b.mask.sum() == 2 * 6
    assert torch.allclose(b.inputs[2, :, 4], torch.full((2,), 0.75))  # R / max_repeats
    for r in range(3):
        assert torch.equal(b.targets[3 + 2 * r: 5 + 2 * r], b.inputs[:2, :, :3])
    with pytest.raises(ValueError, match="repeats"):
        repeat_copy_batch(2, repeats=5, max_repeats=4)


def test_curriculum_advances_exactly_when_the_threshold_is_met():
    c = Curriculum(threshold=0.15, window=3)
    assert [c.update(e) for e in (0.2, 0.1)] == [False, False]      # window not full yet
    assert c.update(0.1) is True                                      # mean 0.1333 < 0.15
    assert (c.level, c.longest_solved) == (2, 1)
    assert [c.update(0.15) for _ in range(5)] == [False] * 5          # exactly 0.15 is not below
    assert (c.level, c.longest_solved) == (2, 1)


def test_curriculum_window_is_a_sliding_mean():
    c = Curriculum(threshold=0.15, window=3)
    for e in (0.15, 0.15, 0.15):
        assert c.update(e) is False
    assert c.update(0.14) is True            # window (0.15, 0.15, 0.14): mean 0.1467 < 0.15
    assert (c.level, c.longest_solved, c.mean_error) == (2, 1, math.inf)
    with pytest.raises(ValueError, match="error"):
        c.update(float("nan"))


def test_planted_entropy_closed_form_and_empirical():
    assert planted_entropy(4, 0.0) == 0.0
    assert planted_entropy(4, 1.0) == pytest.approx(2.0)
    p, q = 1 - 0.1 + 0.1 / 4, 0.1 / 4
    assert planted_entropy(4, 0.1) == pytest.approx(-p * math.log2(p) - 3 * q * math.log2(q))
    k, vocab = 3, 4
    x = planted_stream(20_000, 4, k=k, noise=0.2, vocab=vocab,
                       generator=torch.Generator().manual_seed(0))
    prev, cur = x[:-k].flatten(), x[k:].flatten()
    counts = torch.zeros(vocab, vocab)
    counts.index_put_((prev, cur), torch.ones(len(prev)), accumulate=True)
    cond = counts / counts.sum(1, keepdim=True)
    joint = counts / counts.sum()
    empirical = float(-(joint * torch.log2(cond)).sum())
    assert empirical == pytest.approx(planted_entropy(vocab, 0.2), abs=0.02)


def test_symbol_batch_masks_the_steps_without_a_dependency():
    x = planted_stream(10, 2, k=3)
    b = symbol_batch(x, 4, start=4)
    assert b.inputs.shape == (9, 2, 4) and torch.equal(b.targets, x[1:])
    assert b.mask[:3].sum() == 0 and b.mask[3:].eq(1).all()      # targets x[1..3] have no x[t-3]
    assert batchify(torch.arange(10), 3).tolist() == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]


def test_shipped_corpus_matches_its_checksum_and_splits():
    assert file_sha256(DATA_DIR / SHAKESPEARE) == SHAKESPEARE_SHA256
    readme = (DATA_DIR / "README.md").read_text()
    assert SHAKESPEARE_SHA256 in readme
    c = load_corpus("shakespeare")
    n = len(c.train) + len(c.valid) + len(c.test)
    assert n == (DATA_DIR / SHAKESPEARE).stat().st_size             # ASCII: one byte per char
    assert abs(len(c.train) / n - 0.9) < 1e-3 and c.vocab < 100
    assert c.decode(c.encode("To be")) == "To be"


def test_corpus_checksum_mismatch_is_refused(tmp_path):
    with pytest.raises(ValueError, match="sha256 mismatch"):
        load_corpus("shakespeare", sha256="0" * 64)
    path = tmp_path / "mine.txt"
    path.write_text("hello world, " * 20)
    with pytest.raises(ValueError, match="sha256 mismatch"):
        load_corpus(str(path), sha256="f" * 64)
    c = load_corpus(str(path))                                         # any user file loads
    assert c.chars == "".join(sorted(set("hello world, ")))
    c2 = load_corpus(str(path), sha256=file_sha256(path))
    assert torch.equal(c.train, c2.train)
    with pytest.raises(ValueError, match="source"):
        load_corpus(str(tmp_path / "missing.txt"))
