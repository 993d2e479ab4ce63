"""The DEM model: encoder -> unrolled EM over latent pixels -> responsibilities, plus a decoder.

Forward pass of Pu et al. (2023): the encoder maps a (normalised) image to a latent
map; every image of the batch gets its own diagonal Gaussian mixture over its
latent pixels, fitted by ``em_steps`` unrolled EM steps (:mod:`.em`); the
responsibilities are the soft segmentation. Training minimises
``nll_weight * NLL + entropy_weight * H(resp) + recon_weight * MSE(recon, x)``.

Latents are standardised per image (zero mean, unit variance per channel) before
EM: without that, the NLL term could be lowered just by shrinking the features.

The default weights keep the clustering terms small beside reconstruction. We
measured why: with NLL and entropy weighted like reconstruction, the encoder
learns to pull most pixels (dim nuclei included) into one tight background
blob, since on standardised latents any two tight clumps minimise the NLL
whatever the split; foreground IoU on DSB2018 fell from 0.75 to 0.15. Weighted
down, the clustering terms sharpen the mixture while reconstruction keeps the
latents faithful to the (background-flattened) image.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .em import GMMParams, e_step, fit_gmm, standardize
from .errors import InputError
from .networks import DILATIONS, Decoder, Encoder

MODEL_FORMAT = "napari-dem-model"
MODEL_FORMAT_VERSION = 1


class ModelFileError(InputError):
    """A model file is missing, corrupt, truncated, or made for something else."""


@dataclass
class DEMConfig:
    """Architecture and objective of a DEM model; stored in every model file."""

    ndim: int = 2  #: 2 = images (or per-slice), 3 = volumes with 3D convolutions
    in_channels: int = 1  #: channels are run through the model one at a time
    width: int = 16  #: feature maps per encoder layer
    latent_dim: int = 2  #: D, dimensionality of each pixel's latent vector
    n_clusters: int = 3  #: K used in training (any K can be asked for at inference)
    em_steps: int = 5  #: T, EM steps unrolled in the forward pass
    reg_covar: float = 1e-3  #: variance floor added to every diagonal variance
    nll_weight: float = 0.05  #: weight of the GMM negative log-likelihood (per dimension)
    entropy_weight: float = 0.05  #: weight of the mean entropy of the responsibilities
    recon_weight: float = 100.0  #: weight of the reconstruction mean squared error
    dilations: tuple[int, ...] = field(default_factory=lambda: DILATIONS)
    context_sigma: float = 16.0  #: scale (px) of the local-contrast front end; 0 = off
    denoise_sigma: float = 0.0  #: small blur (px) before the contrast (difference of Gaussians); 0 = off

    def validate(self) -> None:
        if self.ndim not in (2, 3):
            raise ValueError(f"ndim must be 2 or 3, got {self.ndim}")
        for name in ("in_channels", "width", "latent_dim", "em_steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_clusters < 2:
            raise ValueError(f"n_clusters must be >= 2, got {self.n_clusters}")
        if not self.reg_covar > 0:
            raise ValueError(f"reg_covar must be > 0, got {self.reg_covar}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DEMConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown configuration keys {sorted(unknown)}")
        cfg = cls(**{k: (tuple(v) if k == "dilations" else v) for k, v in data.items()})
        cfg.validate()
        return cfg


@dataclass
class DEMOutput:
    latent: torch.Tensor  #: (B, D, *spatial) raw encoder output
    features: torch.Tensor  #: (B, N, D) standardised latent pixels the GMM was fitted on
    params: GMMParams
    log_resp: torch.Tensor  #: (B, N, K)
    log_lik_history: list[torch.Tensor]
    recon: torch.Tensor | None  #: (B, C, *spatial)


class DEMModel(nn.Module):
    """Auto-encoder with an unrolled-EM clustering layer on its latent pixels."""

    def __init__(self, config: DEMConfig | None = None) -> None:
        super().__init__()
        self.config = config or DEMConfig()
        self.config.validate()
        c = self.config
        self.encoder = Encoder(
            c.ndim, c.in_channels, c.width, c.latent_dim, c.dilations, c.context_sigma, c.denoise_sigma
        )
        self.decoder = Decoder(c.ndim, c.latent_dim, c.width, c.in_channels)
        self.metadata: dict[str, Any] = {}

    @property
    def halo(self) -> int:
        """Context, in pixels, a tile needs on each side for exact tiled inference."""
        return self.encoder.halo

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def encode(self, x: torch.Tensor, keep: tuple[slice, ...] | None = None) -> torch.Tensor:
        """Latents of ``x`` (of the region ``keep`` only, if given: :meth:`Encoder.forward`)."""
        return self.encoder(x, keep)

    def forward(
        self,
        x: torch.Tensor,
        *,
        n_clusters: int | None = None,
        em_steps: int | None = None,
        generator: torch.Generator | None = None,
        reconstruct: bool = True,
    ) -> DEMOutput:
        """Run the whole DEM forward pass on a batch ``(B, C, *spatial)`` of normalised images."""
        if x.ndim != self.config.ndim + 2:
            raise ValueError(
                f"a {self.config.ndim}D DEM model expects (B, C, {'Z, ' if self.config.ndim == 3 else ''}"
                f"Y, X) input, got shape {tuple(x.shape)}"
            )
        latent = self.encoder(x)
        feats = standardize(latent.flatten(2).transpose(1, 2), point_dim=1)  # per image
        params, log_resp, history = fit_gmm(
            feats,
            n_clusters or self.config.n_clusters,
            em_steps or self.config.em_steps,
            reg_covar=self.config.reg_covar,
            generator=generator,
        )
        recon = self.decoder(latent) if reconstruct else None
        return DEMOutput(latent, feats, params, log_resp, history, recon)

    def losses(self, x: torch.Tensor, out: DEMOutput) -> dict[str, torch.Tensor]:
        """The three DEM loss terms and their weighted sum (key ``"total"``)."""
        c = self.config
        _, log_lik = e_step(out.features, out.params)
        nll = -log_lik.mean() / out.features.shape[-1]
        resp = out.log_resp.exp()
        entropy = -(resp * out.log_resp).sum(-1).mean()
        target = self.encoder.context(x)
        recon = (
            torch.mean((out.recon - target) ** 2)
            if out.recon is not None
            else torch.zeros((), device=x.device)
        )
        total = c.nll_weight * nll + c.entropy_weight * entropy + c.recon_weight * recon
        return {"total": total, "nll": nll, "entropy": entropy, "recon": recon}


# ----------------------------------------------------------------------------- files


def model_payload(model: DEMModel, **metadata: Any) -> dict[str, Any]:
    """The model as plain data (tensors, strings): what a model file, or a segmenter file, holds."""
    from .. import __version__

    meta = {"package_version": __version__, "architecture": "dem-dilated-cnn", **model.metadata, **metadata}
    return {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "config": json.dumps(asdict(model.config)),
        "metadata": json.dumps(meta, default=str),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }


def model_from_payload(payload: object, source: str) -> DEMModel:
    """The model a :func:`model_payload` describes; any problem is a :class:`ModelFileError`."""
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise ModelFileError(f"{source} is a torch file but not a napari-dem model")
    if payload.get("format_version") != MODEL_FORMAT_VERSION:
        raise ModelFileError(
            f"{source} has model format version {payload.get('format_version')}, "
            f"this napari-dem reads version {MODEL_FORMAT_VERSION}"
        )
    try:
        config = DEMConfig.from_dict(json.loads(payload["config"]))
        metadata = json.loads(payload.get("metadata", "{}"))
        model = DEMModel(config)
        model.load_state_dict(payload["state_dict"], strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{source} is incompatible with this napari-dem: {exc}") from exc
    model.metadata = metadata
    return model.eval()


def save_torch_file(payload: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """``torch.save`` of plain data, atomically (temp file beside it, then rename)."""
    from ..io import atomic_path

    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_torch_file(path: str | os.PathLike[str], what: str = "napari-dem model") -> Any:
    """``torch.load`` that only ever reads plain data (``weights_only=True``); never runs code.

    A file that holds pickled Python objects is refused without executing them: it
    cannot be a napari-dem file, which holds only tensors, numbers and strings.
    """
    import pickle

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{what} file not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "global" in str(exc).lower():  # torch refused to import a Python object
            raise ModelFileError(
                f"{path} is not a {what}: it holds pickled Python objects, which were not executed"
            ) from None
        raise ModelFileError(f"{path} is not a readable {what} (corrupt or truncated?)") from None
    except Exception as exc:  # torch raises many types for corrupt or truncated files
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ModelFileError(
            f"{path} is not a readable {what} (corrupt or truncated?): {type(exc).__name__}: {first}"
        ) from exc


def save_model(model: DEMModel, path: str | os.PathLike[str], **metadata: Any) -> Path:
    """Write the state dict, the config and JSON metadata; atomic (temp file, then rename)."""
    return save_torch_file(model_payload(model, **metadata), path)


def load_model(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> DEMModel:
    """Load a model file safely (``weights_only=True``); any problem is a :class:`ModelFileError`."""
    model = model_from_payload(load_torch_file(path), str(path))
    return model.to(resolve_device(device))


def default_model_path(ndim: int = 2) -> Path:
    """Path of the default model shipped inside the package for 2D or 3D data."""
    if ndim not in (2, 3):
        raise ValueError(f"ndim must be 2 or 3, got {ndim}")
    return Path(str(resources.files("napari_dem.core") / "weights" / f"dem{ndim}d.pt"))


def load_default_model(ndim: int = 2, device: str | torch.device = "cpu") -> DEMModel:
    return load_model(default_model_path(ndim), device)


def available_devices() -> list[str]:
    """The device names :func:`resolve_device` accepts on this machine ("auto" first), for a menu."""
    devices = ["auto", "cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then CPU; an unavailable explicit choice is an error."""
    if isinstance(device, torch.device):
        return device
    name = (device or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError(
                "device 'cuda' was asked for but no CUDA GPU is available; use --device auto or cpu"
            )
        return torch.device(name)
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise InputError("device 'mps' was asked for but Apple MPS is not available; use auto or cpu")
        return torch.device("mps")
    if name == "cpu":
        return torch.device("cpu")
    raise InputError(f"unknown device {device!r}: choose auto, cpu, cuda or mps")
