"""Nearest-code search: exact (the brute-force indices up to floating-point ties) on every backend and in
bounded memory."""

import pytest
import torch

from replicate.errors import ConfigError
from replicate.quantize.base import faiss_module, nearest_code


def assert_same_up_to_ties(found, queries, keys, farthest=False, tolerance=1e-5):
    """Brute force in float64, a few query rows at a time: an index may differ from the brute-force one only
    where the two distances tie within float32 rounding."""
    matches = 0
    for start in range(0, len(queries), 64):
        rows = slice(start, start + 64)
        distances = (queries[rows].double()[:, None, :] - keys.double()[None, :, :]).square().sum(-1)
        expected = distances.argmax(1) if farthest else distances.argmin(1)
        chosen = distances.gather(1, found[rows, None]).squeeze(1)
        best = distances.gather(1, expected[:, None]).squeeze(1)
        assert torch.allclose(chosen, best, rtol=tolerance, atol=tolerance)
        matches += int((found[rows] == expected).sum())
    assert matches / len(queries) > 0.99


BACKENDS = ["torch", "naive"] + (["faiss"] if faiss_module() is not None else [])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(1, 1, 1), (500, 7, 3), (2000, 300, 8), (300, 2000, 32)])
def test_nearest_code_matches_brute_force(backend, shape):
    n, k, d = shape
    queries, keys = torch.randn(n, d), torch.randn(k, d)
    assert_same_up_to_ties(nearest_code(queries, keys, backend=backend), queries, keys)


@pytest.mark.parametrize("backend", BACKENDS)
def test_farthest_point_matches_brute_force(backend):
    queries, keys = torch.randn(300, 4), torch.randn(700, 4)
    assert_same_up_to_ties(nearest_code(queries, keys, farthest=True, backend=backend), queries, keys, farthest=True)


def test_search_with_100k_codes_in_small_chunks_matches_brute_force():
    queries, keys = torch.randn(500, 8), torch.randn(100_000, 8)
    # a 1 MB budget forces blocks of 2 query rows against all 100,000 codes
    found = nearest_code(queries, keys, backend="torch", memory_budget=2**20)
    assert_same_up_to_ties(found, queries, keys)
    if faiss_module() is not None:
        assert_same_up_to_ties(nearest_code(queries, keys, backend="faiss"), queries, keys)


def test_search_rejects_nan_features_with_a_clear_error():
    queries = torch.randn(10, 4)
    queries[3, 1] = float("nan")
    with pytest.raises(ConfigError, match="NaN"):
        nearest_code(queries, torch.randn(5, 4))


def test_search_rejects_mismatched_dimensions():
    with pytest.raises(ConfigError, match="search needs"):
        nearest_code(torch.randn(10, 4), torch.randn(5, 3))
