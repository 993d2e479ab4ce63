"""The encoder's fast CPU path (FFT blur, channels-last layers, matmul head) computes the
same function as its layers applied one after another, and the blur is a textbook Gaussian."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from napari_dem.core.networks import FFT_MIN_TAPS, Encoder, LocalContrast


def _layer_by_layer(encoder: Encoder, context: torch.Tensor) -> torch.Tensor:
    """The encoder as written in its docstring: head(concat(body(context), context))."""
    return encoder.head(torch.cat([encoder.body(context), context], dim=1))


@pytest.mark.parametrize(
    "ndim, sigma, shape", [(2, 16.0, (2, 150, 97)), (3, 4.0, (2, 20, 33, 41)), (3, 1.0, (1, 9, 12, 10))]
)
def test_blur_by_fft_equals_scipys_gaussian_with_edge_replication(
    ndim: int, sigma: float, shape: tuple
) -> None:
    contrast = LocalContrast(ndim, sigma)
    assert contrast.kernel.numel() >= FFT_MIN_TAPS[ndim]  # the FFT path is the one tested
    image = np.random.default_rng(0).random(shape).astype(np.float32)
    blurred = contrast.blur(torch.from_numpy(image)[None]).numpy()[0]
    for plane, got in zip(image, blurred, strict=True):
        want = ndi.gaussian_filter(plane.astype(np.float64), sigma, mode="nearest", truncate=3.0)
        np.testing.assert_allclose(got, want, atol=2e-6)


@pytest.mark.parametrize("ndim, shape", [(2, (2, 1, 70, 90)), (3, (1, 1, 12, 30, 26))])
def test_fast_cpu_encoder_equals_its_layers_and_so_do_its_gradients(ndim: int, shape: tuple) -> None:
    torch.manual_seed(0)
    encoder = Encoder(ndim, 1, width=8, latent_dim=3, context_sigma=16.0 if ndim == 2 else 4.0)
    for p in encoder.parameters():  # not the initial head: every input of the head matters
        p.data.normal_(0, 0.3)
    x = torch.rand(shape)
    fast = encoder(x)
    assert fast.is_contiguous() and fast.shape == (shape[0], 3, *shape[2:])
    reference = _layer_by_layer(encoder, encoder.context(x))
    torch.testing.assert_close(fast, reference, rtol=1e-5, atol=1e-5)

    fast_grads = torch.autograd.grad(fast.square().sum(), list(encoder.parameters()))
    ref_grads = torch.autograd.grad(
        _layer_by_layer(encoder, encoder.context(x)).square().sum(), list(encoder.parameters())
    )
    for a, b in zip(fast_grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
