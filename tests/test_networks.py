"""The encoder's fast CPU path (FFT blur, channels-last layers, matmul head) computes the
same function as its layers applied one after another, and the blur is a textbook Gaussian."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from napari_dem.core.networks import (
    FFT_MIN_TAPS,
    Encoder,
    LocalContrast,
    _conv_by_matmul,
    fast_length,
    gaussian_kernel1d,
)


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


@pytest.mark.parametrize("dilation, bias", [(1, True), (2, True), (3, False)])
def test_one_channel_convolution_by_matmul_equals_torchs_convolution(dilation: int, bias: bool) -> None:
    """The encoder's first layer (one channel in, 3x3) runs as a matmul over shifted copies on
    the CPU: the same outputs, zero padding included, in channels-last layout, and the same
    gradients."""
    torch.manual_seed(2)
    conv = torch.nn.Conv2d(1, 16, 3, padding=dilation, dilation=dilation, bias=bias)
    x = torch.rand(2, 1, 23, 31, requires_grad=True)
    got = _conv_by_matmul(x, conv)
    want = conv(x)
    assert got.shape == want.shape and got.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    grads = (
        torch.autograd.grad(got.sum(), [x, conv.weight]),
        torch.autograd.grad(want.sum(), [x, conv.weight]),
    )
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("sigma", [0.5, 1.0, 3.0])
def test_narrow_blur_by_shifted_sums_equals_scipys_gaussian_and_the_convolution(sigma: float) -> None:
    """Kernels below the FFT's length take the direct path; on the CPU that path sums shifted
    copies instead of running a one-channel convolution: the same numbers, and a textbook
    Gaussian with edge replication."""
    contrast = LocalContrast(2, 16.0)
    kernel = gaussian_kernel1d(sigma)
    assert kernel.numel() < FFT_MIN_TAPS[2]
    image = torch.rand(2, 1, 61, 47, generator=torch.Generator().manual_seed(0))
    got = contrast.blur(image, kernel)
    r = (kernel.numel() - 1) // 2
    conv = image
    for shape, pad in (((1, 1, -1, 1), (0, 0, r, r)), ((1, 1, 1, -1), (r, r, 0, 0))):
        padded = torch.nn.functional.pad(conv, pad, mode="replicate")
        conv = torch.nn.functional.conv2d(padded, kernel.view(shape))
    torch.testing.assert_close(got, conv, rtol=0, atol=1e-6)
    for plane, out in zip(image[:, 0].numpy(), got[:, 0].numpy(), strict=True):
        want = ndi.gaussian_filter(plane.astype(np.float64), sigma, mode="nearest", truncate=3.0)
        np.testing.assert_allclose(out, want, atol=2e-6)


@pytest.mark.parametrize("ndim, sigma, shape", [(2, 16.0, (1, 120, 97)), (3, 4.0, (2, 20, 33, 41))])
def test_difference_of_gaussians_in_one_fft_equals_two_textbook_blurs(
    ndim: int, sigma: float, shape: tuple
) -> None:
    """The local contrast with shot-noise smoothing (the shipped models' front end): the
    narrow blur rides in the wide blur's FFT, and the result is still blur(1) - blur(sigma)."""
    contrast = LocalContrast(ndim, sigma, denoise_sigma=1.0)
    image = np.random.default_rng(1).random(shape).astype(np.float32)
    got = contrast(torch.from_numpy(image)[None]).numpy()[0]
    for plane, out in zip(image, got, strict=True):
        p = plane.astype(np.float64)
        want = ndi.gaussian_filter(p, 1.0, mode="nearest", truncate=3.0) - ndi.gaussian_filter(
            p, sigma, mode="nearest", truncate=3.0
        )
        np.testing.assert_allclose(out, want, atol=2e-6)


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


@pytest.mark.parametrize(
    "ndim, shape, keep",
    [
        (2, (1, 1, 140, 150), (slice(55, 85), slice(55, 95))),  # a tile inside the image
        (2, (1, 1, 85, 150), (slice(0, 30), slice(55, 95))),  # a tile on the image's top edge
        (3, (1, 1, 30, 40, 36), (slice(13, 17), slice(13, 27), slice(0, 10))),
    ],
)
def test_encoding_only_a_tiles_core_equals_cropping_the_whole_tiles_latents(
    ndim: int, shape: tuple, keep: tuple
) -> None:
    """``keep`` runs the convolutions on the core and their reach around it, not on the whole
    tile: the core's latents must not change (the zero padding of a convolution never
    reaches them), on the CPU's fast path and on the plain layers."""
    torch.manual_seed(1)
    encoder = Encoder(ndim, 1, width=8, latent_dim=3, context_sigma=4.0 if ndim == 2 else 2.0)
    for p in encoder.parameters():
        p.data.normal_(0, 0.3)
    assert all(k.start == 0 or k.start >= encoder.halo for k in keep)  # a tile's core, as tiles are read
    x = torch.rand(shape)
    with torch.no_grad():
        whole = encoder(x)[(..., *keep)]
        core = encoder(x, keep)
        assert core.shape == whole.shape
        torch.testing.assert_close(core, whole, rtol=1e-5, atol=1e-6)
        context = encoder.context(x)
        torch.testing.assert_close(
            core, _layer_by_layer(encoder, context)[(..., *keep)], rtol=1e-5, atol=1e-5
        )
        # the reach is the receptive radius, no less: one pixel less of context changes the edge
        r = encoder.body_radius
        short = tuple(slice(k.start - r + 1 if k.start else 0, k.stop + r - 1) for k in keep)
        inner = tuple(slice(k.start - s.start, k.stop - s.start) for k, s in zip(keep, short, strict=True))
        assert not torch.allclose(
            _layer_by_layer(encoder, context[(..., *short)])[(..., *inner)], core, atol=1e-4
        )


def test_fast_length_is_the_smallest_5_smooth_length_at_least_n() -> None:
    def smooth(m: int) -> bool:
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        return m == 1

    for n in range(1, 3000):
        got = fast_length(n)
        assert got >= n and smooth(got)
        assert not any(smooth(m) for m in range(n, got))
