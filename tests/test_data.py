"""Data loaders: IDX parsing, checksums, standardisation, seeded splits (no network)."""
import hashlib
import io
import urllib.request

import numpy as np
import pytest
import torch

import dni_lite.data.datasets as data
from dni_lite.data.datasets import (MNIST_FILES, download_mnist, file_sha256, load_dataset, read_idx,
                           standardise, write_idx)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_idx_round_trip(tmp_path, dtype, name):
    array = (np.arange(2 * 3 * 4) - 5).astype(dtype).reshape(2, 3, 4)
    write_idx(tmp_path / name, array)
    back = read_idx(tmp_path / name)
    assert back.dtype == np.dtype(dtype) and back.shape == (2, 3, 4)
    assert np.array_equal(back, array)


def test_idx_header_is_parsed_byte_by_byte(tmp_path):
    raw = bytes([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + bytes(range(6))
    (tmp_path / "m.idx").write_bytes(raw)
    assert read_idx(tmp_path / "m.idx").tolist() == [[0, 1, 2], [3, 4, 5]]


def test_truncated_or_foreign_idx_is_rejected(tmp_path):
    write_idx(tmp_path / "ok.idx", np.zeros((4, 5), np.uint8))
    raw = (tmp_path / "ok.idx").read_bytes()
    (tmp_path / "short.idx").write_bytes(raw[:-3])
    with pytest.raises(ValueError, match="promises"):
        read_idx(tmp_path / "short.idx")
    (tmp_path / "junk.idx").write_bytes(b"<html>not found</html>")
    with pytest.raises(ValueError, match="not an IDX"):
        read_idx(tmp_path / "junk.idx")


def _fake_mnist(directory, n_train=30, n_test=10, seed=0):
    """Write four small IDX archives under MNIST's names; return their checksums."""
    rng = np.random.default_rng(seed)
    arrays = {"train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              "train_labels": rng.integers(0, 10, n_train).astype(np.uint8),
              "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              "test_labels": rng.integers(0, 10, n_test).astype(np.uint8)}
    files = {}
    for key, (filename, _, _) in MNIST_FILES.items():
        write_idx(directory / filename, arrays[key])
        files[key] = (filename, (directory / filename).stat().st_size,
                      file_sha256(directory / filename))
    return arrays, files


def test_mnist_loads_from_verified_files(tmp_path, monkeypatch):
    arrays, files = _fake_mnist(tmp_path)
    monkeypatch.setattr(data, "MNIST_FILES", files)
    ds = load_dataset("mnist", mnist_dir=tmp_path)
    assert ds.x.shape == (30, 784) and ds.x_test.shape == (10, 784)
    assert torch.equal(ds.y, torch.tensor(arrays["train_labels"], dtype=torch.long))


def test_corrupt_mnist_file_is_never_used(tmp_path, monkeypatch):
    _, files = _fake_mnist(tmp_path)
    monkeypatch.setattr(data, "MNIST_FILES", files)
    path = tmp_path / files["test_labels"][0]
    raw = path.read_bytes()
    path.write_bytes(raw[:-1] + bytes([raw[-1] ^ 0xFF]))     # one flipped byte
    with pytest.raises(ValueError, match="SHA-256"):
        load_dataset("mnist", mnist_dir=tmp_path)


def test_missing_mnist_names_the_alternatives(tmp_path):
    with pytest.raises(FileNotFoundError, match="mnist1d.*digits"):
        load_dataset("mnist", mnist_dir=tmp_path)


def test_download_verifies_and_discards_partial_files(tmp_path, monkeypatch):
    good = {k: f"payload {k}".encode() for k in MNIST_FILES}
    files = {k: (name, len(good[k]), hashlib.sha256(good[k]).hexdigest())
             for k, (name, _, _) in MNIST_FILES.items()}
    monkeypatch.setattr(data, "MNIST_FILES", files)
    by_name = {files[k][0]: good[k] for k in files}
    calls = []

    def fake_urlopen(url, timeout):
        calls.append(url)
        name = url.rsplit("/", 1)[1]
        body = by_name[name]
        if url.startswith("https://broken/"):
            body = body[: len(body) // 2]                    # a partial download
        return io.BytesIO(body)

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    out = download_mnist(tmp_path, mirrors=("https://broken/", "https://good/"))
    for k, (name, _, _) in files.items():
        assert (out / name).read_bytes() == good[k]
    assert not list(tmp_path.glob("*.part"))
    assert len(calls) == 8                                   # each file: broken, then good
    calls.clear()
    download_mnist(tmp_path, mirrors=("https://good/",))     # verified cache: no requests
    assert calls == []


def test_offline_download_fails_with_a_clear_message(tmp_path, monkeypatch):
    def offline(url, timeout):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(ConnectionError, match="mnist1d.*digits"):
        download_mnist(tmp_path)
    assert not any(tmp_path.iterdir())


def test_standardise_uses_training_statistics_only():
    x = np.array([[0.0, 5.0], [2.0, 5.0]])
    x_test = np.array([[4.0, 7.0]])
    a, b = standardise(x, x_test)
    assert np.allclose(a, [[-1, 0], [1, 0]])
    assert np.allclose(b, [[3, 2]])          # scaled by train mean 1, std 1; constant column centred


def test_builtin_datasets_are_standardised_and_seeded():
    ds = load_dataset("mnist1d")
    assert ds.x.shape == (4000, 40) and ds.x_test.shape == (1000, 40) and ds.n_classes == 10
    assert torch.allclose(ds.x.mean(0), torch.zeros(40), atol=1e-4)
    assert torch.allclose(ds.x.std(0), torch.ones(40), atol=1e-2)
    d0, d0b, d1 = load_dataset("digits", seed=0), load_dataset("digits", seed=0), \
        load_dataset("digits", seed=1)
    assert torch.equal(d0.x, d0b.x) and not torch.equal(d0.y_test, d1.y_test)
    assert d0.x.shape[0] + d0.x_test.shape[0] == 1797
    assert load_dataset("mnist1d", n_train=100, seed=3).x.shape == (100, 40)
    with pytest.raises(ValueError, match="name"):
        load_dataset("cifar")


def test_minibatch_indices_cover_each_epoch_once_without_the_ragged_end():
    import itertools

    import torch

    from dni_lite.data.datasets import minibatch_indices

    batches = list(itertools.islice(minibatch_indices(10, 3, torch.Generator().manual_seed(0)), 6))
    assert [len(b) for b in batches] == [3] * 6          # 3 full batches per epoch, 1 left out
    for epoch in (batches[:3], batches[3:]):
        seen = torch.cat(epoch)
        assert len(set(seen.tolist())) == 9
    again = list(itertools.islice(minibatch_indices(10, 3, torch.Generator().manual_seed(0)), 6))
    assert all(torch.equal(a, b) for a, b in zip(batches, again))
    assert len(next(minibatch_indices(4, 10, torch.Generator()))) == 4   # batch capped at n
    with pytest.raises(ValueError, match="batch_size"):
        next(minibatch_indices(10, 0, torch.Generator()))
