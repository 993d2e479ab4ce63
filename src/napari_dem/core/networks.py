"""Small convolutional encoders and decoders for 2D images and 3D volumes.

Why this shape: the encoder keeps full resolution (no pooling) and widens its
receptive field with dilated 3x3 convolutions. That gives each pixel the spatial
context per-pixel clustering lacks (no speckle), costs a few thousand
multiply-adds per pixel (fast on a laptop CPU), and makes tiling exact: a tile
with a halo of :func:`receptive_radius` pixels gives the same latents as the
whole image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .tiles import with_halo

DILATIONS: tuple[int, ...] = (1, 2, 4)

#: Kernels at least this long are applied through the FFT on the CPU, per spatial ndim: in
#: 2D the context blur (97 taps at sigma 16) costs a third as much that way; in 3D, where
#: a separable 1D convolution is slow, every kernel does (7 taps: 49 -> 19 ms, the 25-tap
#: context blur 199 -> 66 ms on a 60x150x150 tile). Both paths agree to 1e-6.
FFT_MIN_TAPS = {2: 33, 3: 1}


def _conv(ndim: int) -> type[nn.Conv2d] | type[nn.Conv3d]:
    if ndim == 2:
        return nn.Conv2d
    if ndim == 3:
        return nn.Conv3d
    raise ValueError(f"spatial ndim must be 2 or 3, got {ndim}")


def receptive_radius(dilations: Sequence[int] = DILATIONS) -> int:
    """Pixels of context on each side that one output latent depends on."""
    return int(sum(dilations))


def gaussian_kernel1d(sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(3.0 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


class LocalContrast(nn.Module):
    """Fixed front end: the image minus its Gaussian-blurred background (``x - G_sigma * x``).

    Nuclei of very different brightness sit on an uneven background; a global
    intensity threshold tops out near 0.77 foreground IoU on the DSB2018 image,
    while the background-flattened image at sigma = 16 px separates them (0.84 at
    its best threshold; a 3-component GMM on it alone reaches 0.81, on raw
    intensity 0.57). A small receptive field cannot learn this, so it is given: a
    separable blur with edge replication (tiles with a halo of :attr:`radius` give
    exact results). The auto-encoder reconstructs this flattened image.
    """

    def __init__(self, ndim: int, sigma: float, denoise_sigma: float = 0.0) -> None:
        super().__init__()
        self.ndim = ndim
        self.sigma = float(sigma)
        self.denoise_sigma = float(denoise_sigma)
        self.register_buffer("kernel", gaussian_kernel1d(self.sigma), persistent=False)
        self.register_buffer("small", gaussian_kernel1d(max(self.denoise_sigma, 0.1)), persistent=False)

    @property
    def radius(self) -> int:
        if self.sigma <= 0:
            return 0
        return (self.kernel.numel() - 1) // 2

    def blur(self, x: torch.Tensor, kernel: torch.Tensor | None = None) -> torch.Tensor:
        """Separable Gaussian blur with edge replication."""
        kernel = self.kernel if kernel is None else kernel
        b, c = x.shape[:2]
        y = x.reshape(b * c, 1, *x.shape[2:])
        r = (kernel.numel() - 1) // 2
        if self._by_fft(x, kernel):
            return fft_filter(y, [(1.0, kernel.to(y))]).reshape(x.shape)
        fn = torch.nn.functional.conv2d if self.ndim == 2 else torch.nn.functional.conv3d
        weights = kernel.tolist() if x.device.type == "cpu" else None
        for axis in range(self.ndim):
            shape = [1, 1] + [1] * self.ndim
            shape[2 + axis] = -1
            pad = [0, 0] * self.ndim
            # F.pad lists pads from the last axis backwards.
            pad[2 * (self.ndim - 1 - axis)] = r
            pad[2 * (self.ndim - 1 - axis) + 1] = r
            padded = torch.nn.functional.pad(y, pad, mode="replicate")
            if weights is None:
                y = fn(padded, kernel.view(shape).to(y))
                continue
            # On the CPU a one-channel convolution is slow (9 ms for 7 taps on a 520 px tile);
            # the same sum as shifted copies takes a few passes over memory (1 ms).
            n = y.shape[2 + axis]
            out = padded.narrow(2 + axis, 0, n) * weights[0]
            for i in range(1, len(weights)):
                out = out.add(padded.narrow(2 + axis, i, n), alpha=weights[i])
            y = out
        return y.reshape(x.shape)

    def _by_fft(self, x: torch.Tensor, kernel: torch.Tensor) -> bool:
        return x.device.type == "cpu" and kernel.numel() >= FFT_MIN_TAPS[self.ndim]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.sigma <= 0:
            return x
        if self.denoise_sigma <= 0:
            return x - self.blur(x)
        # A difference of Gaussians: shot noise smoothed away too. Where the wide blur goes
        # through the FFT, the narrow one rides along in the same transform (one spectrum,
        # the difference of the two kernels'), instead of a direct blur of its own.
        if self._by_fft(x, self.kernel):
            b, c = x.shape[:2]
            y = x.reshape(b * c, 1, *x.shape[2:])
            return fft_filter(y, [(1.0, self.small.to(y)), (-1.0, self.kernel.to(y))]).reshape(x.shape)
        return self.blur(x, self.small) - self.blur(x)


def fft_filter(y: torch.Tensor, kernels: list[tuple[float, torch.Tensor]]) -> torch.Tensor:
    """``sum(weight * blur(y, kernel))`` over ``kernels`` (separable, odd length) on ``(N, 1,
    *spatial)``, by one FFT: the blur of :meth:`LocalContrast.blur` for one kernel.

    The input is padded by edge replication by the widest kernel's radius, as the direct path
    pads; a circular convolution of the padded array is exact on its valid part (no output
    reads across the wrap), and a narrower kernel reads no further than its own radius there,
    so the paths agree to float rounding. The transform's length is rounded up to a product
    of 2, 3 and 5 (:func:`fast_length`; zeros after the padding: the valid part never reads
    them): a 512 px tile pads to 718 = 2 x 359, whose transform took twice as long as 720's.
    """
    r = max((k.numel() - 1) // 2 for _, k in kernels)
    ndim = y.ndim - 2
    padded = torch.nn.functional.pad(y, [r] * (2 * ndim), mode="replicate")
    sizes = y.shape[2:]
    shape = tuple(fast_length(n) for n in padded.shape[2:])
    spectrum: torch.Tensor | float = 0.0
    for weight, kernel in kernels:
        part: torch.Tensor | None = None
        for axis, n in enumerate(shape):
            taps = torch.zeros(n, dtype=y.dtype, device=y.device)
            start = r - (kernel.numel() - 1) // 2  # every kernel centred on the widest one's centre
            taps[start : start + kernel.numel()] = kernel
            # the last axis is the half spectrum of rfftn
            line = torch.fft.rfft(taps) if axis == ndim - 1 else torch.fft.fft(taps)
            line = line.view([-1 if a == axis else 1 for a in range(ndim)])
            part = line if part is None else part * line
        spectrum = spectrum + weight * part
    axes = tuple(range(2, 2 + ndim))
    out = torch.fft.irfftn(torch.fft.rfftn(padded, s=shape, dim=axes) * spectrum, s=shape, dim=axes)
    return out[(..., *(slice(2 * r, 2 * r + n) for n in sizes))]


def fast_length(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= ``n``: a length the FFT handles quickly."""
    best = 1 << max(0, (n - 1).bit_length())
    five = 1
    while five < best:
        three = five
        while three < best:
            best = min(best, three * (1 << max(0, (-(-n // three) - 1).bit_length())))
            three *= 3
        five *= 5
    return best


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    fmt = torch.channels_last if x.ndim == 4 else torch.channels_last_3d
    return x.contiguous(memory_format=fmt)


class Encoder(nn.Module):
    """Image ``(B, C, *spatial)`` -> latent map ``(B, D, *spatial)`` at full resolution."""

    def __init__(
        self,
        ndim: int,
        in_channels: int,
        width: int,
        latent_dim: int,
        dilations: Sequence[int] = DILATIONS,
        context_sigma: float = 16.0,
        denoise_sigma: float = 0.0,
    ) -> None:
        super().__init__()
        conv = _conv(ndim)
        self.context = LocalContrast(ndim, context_sigma, denoise_sigma)
        layers: list[nn.Module] = []
        c = in_channels
        for d in dilations:
            layers += [conv(c, width, 3, padding=d, dilation=d), nn.ReLU(inplace=True)]
            c = width
        self.body = nn.Sequential(*layers)
        # The raw intensity is fed to the head too: a short path that keeps the
        # latent faithful to intensity, which is what "background" usually means.
        self.head = conv(width + in_channels, latent_dim, 1)
        with torch.no_grad():
            # Start as "latent 0 = the flattened image": the mixture then begins where a
            # GMM on local contrast is already good, and training refines from there.
            self.head.weight.mul_(0.1)
            self.head.weight[:, width:] = 0.0
            self.head.weight[0, width:] = 1.0

    @property
    def halo(self) -> int:
        """Pixels of context on each side that one output latent depends on."""
        return self.context.radius + self.body_radius

    @property
    def body_radius(self) -> int:
        """Pixels of local contrast on each side that the convolutions read for one latent."""
        return receptive_radius([m.dilation[0] for m in self.body if isinstance(m, nn.Conv2d | nn.Conv3d)])

    def forward(self, x: torch.Tensor, keep: tuple[slice, ...] | None = None) -> torch.Tensor:
        """Latents of ``x``; with ``keep`` (one slice per spatial axis), only those of that
        region, the core of a tile read with :attr:`halo` around it.

        Why ``keep``: the local contrast of a tile is exact only :attr:`body_radius` pixels
        around its core (its outer ring is what the blur needs), so the convolutions run on
        that much and no more: 28 % less work on a 512 px core with a 55 px halo. Equal to
        cropping the full output (tests/test_networks.py): each latent of the core reads only
        contrast inside the crop, and no convolution's zero padding reaches it."""
        x = self.context(x)
        if keep is not None:
            crop, keep = with_halo(keep, tuple(x.shape[2:]), self.body_radius)
            x = x[(..., *crop)]
        out = self._latents(x)
        return out if keep is None else out[(..., *keep)]

    def _latents(self, x: torch.Tensor) -> torch.Tensor:
        """The convolutions and the head on the local contrast ``x``."""
        if x.device.type != "cpu":
            return self.head(torch.cat([self.body(x), x], dim=1))
        # On the CPU the same layers run in channels-last layout (about half the time
        # of the default layout for 16-channel dilated convolutions) and the 1x1 head
        # is a matmul over the channel axis (a tenth of a 1x1 convolution's time); the
        # result equals the plain path to float rounding (tests/test_networks.py).
        conv = torch.nn.functional.conv2d if self.context.ndim == 2 else torch.nn.functional.conv3d
        h = x
        for m in self.body:
            if isinstance(m, nn.Conv2d) and m.in_channels * math.prod(m.kernel_size) <= IM2COL_TAPS:
                h = _conv_by_matmul(h, m)
            elif isinstance(m, nn.Conv2d | nn.Conv3d):
                h = conv(_channels_last(h), _channels_last(m.weight), m.bias, m.stride, m.padding, m.dilation)
            else:
                h = m(h)
        width = h.shape[1]
        weight = self.head.weight.flatten(1)
        out = h.movedim(1, -1) @ weight[:, :width].T + x.movedim(1, -1) @ weight[:, width:].T
        return (out + self.head.bias).movedim(-1, 1).contiguous()


#: A 2D convolution reading at most this many inputs per output (one channel, 3x3: the
#: encoder's first layer) runs as one matmul over shifted copies (:func:`_conv_by_matmul`).
IM2COL_TAPS = 9


def _conv_by_matmul(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv(x)`` (stride 1, zero padding) as one matmul of the shifted copies of ``x``,
    in channels-last layout.

    Why: with one input channel, oneDNN's convolution spends 12-14 ms on a 526 px crop
    (twice a 16-channel layer, for a sixteenth of the work); the nine shifted copies and
    a (pixels x 9) @ (9 x 16) matmul take 3 ms, and sum the same products
    (tests/test_networks.py)."""
    b, c, height, width = x.shape
    (dy, dx), (py, px) = conv.dilation, conv.padding
    ky, kx = conv.kernel_size
    padded = torch.nn.functional.pad(x, (px, px, py, py))
    shifted = [
        padded[:, :, i * dy : i * dy + height, j * dx : j * dx + width] for i in range(ky) for j in range(kx)
    ]
    columns = torch.stack(shifted, -1).permute(0, 2, 3, 1, 4).reshape(-1, c * ky * kx)  # (pixels, C*ky*kx)
    weight = conv.weight.reshape(conv.out_channels, -1)
    out = columns @ weight.T if conv.bias is None else torch.addmm(conv.bias, columns, weight.T)
    return out.view(b, height, width, -1).permute(0, 3, 1, 2)


class Decoder(nn.Module):
    """Latent map -> reconstruction of the normalised input (used only in training)."""

    def __init__(self, ndim: int, latent_dim: int, width: int, out_channels: int) -> None:
        super().__init__()
        conv = _conv(ndim)
        self.body = nn.Sequential(
            conv(latent_dim, width, 3, padding=1),
            nn.ReLU(inplace=True),
            conv(width, width, 3, padding=1),
            nn.ReLU(inplace=True),
            conv(width, out_channels, 1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z)


def encoder_flops_per_pixel(encoder: Encoder, body: bool = True) -> int:
    """Floating-point operations (2 per multiply-add) per output pixel of the encoder
    (``body=False``: of its local-contrast blur alone)."""
    ctx = encoder.context
    flops = (2 * ctx.kernel.numel() * ctx.ndim + 1) if ctx.sigma > 0 else 0
    if not body:
        return flops
    for m in encoder.modules():
        if isinstance(m, nn.Conv2d | nn.Conv3d):
            k = 1
            for s in m.kernel_size:
                k *= s
            flops += 2 * m.in_channels * m.out_channels * k // m.groups + m.out_channels
    return flops
