"""The RBF kernel: exact zeros far from each distance, and the banded first layer equals the dense one."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pipeline.model.rbf import RADIUS, GaussianRBF, banded_rbf_linear, gaussian_expansion


def test_rbf_band_is_exact_and_zero_far_from_the_distance():
    rbf = GaussianRBF(0.0, 30.0, 300)
    dist = torch.tensor([0.0, 0.96, 1.5, 4.321, 29.95, 31.0])
    full = rbf(dist)
    w = 0.1
    exact = torch.exp(-((dist.double()[:, None] - w * torch.arange(300)) ** 2) / (2 * w**2))
    # the formula to float32 rounding (of an exponent up to -87: relative 1e-5), except that numbers
    # below float32's smallest normal are flushed to zero
    torch.testing.assert_close(full.double(), exact, rtol=1e-5, atol=torch.finfo(torch.float32).tiny)
    band = gaussian_expansion(dist, rbf.centres[40:60], rbf.width)
    torch.testing.assert_close(band, full[:, 40:60], rtol=0, atol=0)
    far = (dist[:, None] - rbf.centres).abs() >= RADIUS * w
    assert torch.all(full[far] == 0) and torch.all(full[~far][:3] > 0)
    assert torch.all(full.max(1).values[:5] > 0.88)  # the nearest centre is within w / 2


@pytest.mark.parametrize("band", [1, 7, 16, 300, 1000])
def test_banded_rbf_linear_equals_the_dense_layer(band):
    """Any band width, distances below, inside and beyond the centre range, and repeated ones."""
    gen = torch.Generator().manual_seed(0)
    rbf = GaussianRBF(0.5, 20.5, 200)
    weight, bias = torch.randn(24, 200, generator=gen), torch.randn(24, generator=gen)
    dist = torch.cat([torch.rand(400, generator=gen) * 22, torch.tensor([0.0, 3.0, 3.0, 20.5, 40.0])])
    dist = dist.sort().values
    banded = banded_rbf_linear(dist, rbf, weight, bias, band)
    assert banded.shape == (len(dist), 24) and banded.dtype == torch.float32
    torch.testing.assert_close(banded, F.linear(rbf(dist), weight, bias), rtol=1e-5, atol=1e-5)


def test_banded_rbf_linear_edge_cases():
    rbf = GaussianRBF(0.0, 30.0, 300)
    weight, bias = torch.randn(8, 300), torch.randn(8)
    assert banded_rbf_linear(torch.zeros(0), rbf, weight, bias, 16).shape == (0, 8)
    one = torch.tensor([1.234])
    expected = F.linear(rbf(one), weight, bias)
    torch.testing.assert_close(banded_rbf_linear(one, rbf, weight, bias, 16), expected)
    with pytest.raises(ValueError, match="ascending"):
        banded_rbf_linear(torch.tensor([2.0, 1.0]), rbf, weight, bias, 16)
