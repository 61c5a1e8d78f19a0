"""The four networks: Generator, Discriminator (or critic), attribute Classifier, Encoder.

Each is built from a small config dataclass, so a checkpoint can rebuild it from its metadata
alone. All work on 64×64 RGB in [-1, 1] (see `core.data.NORMALISATION`).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, fields
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from core.model_hash import state_hash


def _check_range(cfg: object, name: str, lo: int, hi: int) -> None:
    value = getattr(cfg, name)
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ValueError(f"{type(cfg).__name__}.{name} must be an integer in [{lo}, {hi}], got {value!r}")


def _check_choice(cfg: object, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(cfg, name)
    if value not in choices:
        raise ValueError(f"{type(cfg).__name__}.{name} must be one of {choices}, got {value!r}")


def _check_image_size(cfg: object) -> None:
    size = getattr(cfg, "image_size")
    _check_range(cfg, "image_size", 16, 256)
    if size & (size - 1):
        raise ValueError(f"{type(cfg).__name__}.image_size must be a power of two, got {size}")


def config_from_dict(cls: type, data: dict) -> object:
    """Build a config dataclass from untrusted metadata: unknown keys and bad values are errors."""
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__} metadata must be a dict, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {sorted(unknown)}")
    cfg = cls(**data)
    cfg.validate()
    return cfg


# ---------------------------------------------------------------------------------------------
# Generator


@dataclass
class GeneratorConfig:
    z_dim: int = 128
    width: int = 64  # channels at the last hidden resolution; ×8 at 4×4
    upsample: str = "nearest"  # "nearest": resize-conv (no checkerboard); "transposed": classic DCGAN
    image_size: int = 64
    to_rgb: str = "resize"  # last layer: "resize" as the others; "subpixel": 3×3 conv to 12 channels + pixel shuffle
    UPSAMPLING: ClassVar[tuple[str, ...]] = ("nearest", "transposed")

    def validate(self) -> None:
        _check_range(self, "z_dim", 2, 1024)
        _check_range(self, "width", 4, 256)
        _check_choice(self, "upsample", self.UPSAMPLING)
        _check_choice(self, "to_rgb", ("resize", "subpixel"))
        _check_image_size(self)


class Generator(nn.Module):
    """DCGAN-style generator: z -> 4×4 feature map -> doubling stages -> RGB via tanh.

    `upsample="transposed"` is the classic DCGAN (Radford et al.) stack of 4×4 stride-2
    transposed convolutions; `"nearest"` replaces each with nearest-neighbour upsampling and a
    3×3 convolution, which removes checkerboard artefacts at the same cost. `to_rgb="subpixel"`
    makes the last doubling a 3×3 convolution at the lower resolution to 4 × 3 channels, shuffled
    into 2×2 pixels (Shi et al. 2016): a three-channel convolution at full resolution is the
    slowest layer on a CPU (it cannot fill the vector units), this one runs on a quarter of the pixels.
    """

    def __init__(self, config: GeneratorConfig | None = None):
        super().__init__()
        self.config = cfg = config or GeneratorConfig()
        cfg.validate()
        n_up = int(math.log2(cfg.image_size)) - 2  # 4 -> image_size
        chans = [cfg.width * 2 ** min(n_up - 1 - i, 3) for i in range(n_up)]  # e.g. 512,256,128,64
        if cfg.upsample == "transposed":
            self.stem = nn.Sequential(
                nn.Unflatten(1, (cfg.z_dim, 1, 1)),
                nn.ConvTranspose2d(cfg.z_dim, chans[0], 4, 1, 0, bias=False),
                nn.BatchNorm2d(chans[0]),
                nn.ReLU(True),
            )
        else:
            self.stem = nn.Sequential(
                nn.Linear(cfg.z_dim, chans[0] * 16, bias=False),
                nn.Unflatten(1, (chans[0], 4, 4)),
                nn.BatchNorm2d(chans[0]),
                nn.ReLU(True),
            )
        blocks = []
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            blocks += [self._up(c_in, c_out), nn.BatchNorm2d(c_out), nn.ReLU(True)]
        self.body = nn.Sequential(*blocks)
        last = (nn.Sequential(nn.Conv2d(chans[-1], 12, 3, 1, 1), nn.PixelShuffle(2)) if cfg.to_rgb == "subpixel"
                else self._up(chans[-1], 3, bias=True))
        self.to_rgb = nn.Sequential(last, nn.Tanh())

    def _up(self, c_in: int, c_out: int, bias: bool = False) -> nn.Module:
        if self.config.upsample == "transposed":
            return nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=bias)
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, 1, 1, bias=bias))

    @property
    def z_dim(self) -> int:
        return self.config.z_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.to_rgb(self.body(self.stem(z)))


# ---------------------------------------------------------------------------------------------
# Style-based generator (StyleGAN2-like): mapping network z -> w, modulated convolutions


@dataclass
class StyleGeneratorConfig:
    arch: str = "style"  # tells a generator checkpoint which class to rebuild (absent = DCGAN)
    z_dim: int = 128
    w_dim: int = 128
    mapping_layers: int = 4
    width: int = 32  # channels at the output resolution; doubles per halving, up to max_channels
    max_channels: int = 256
    convs_per_block: int = 2  # modulated 3×3 convs per resolution above 4×4 (the first upsamples)
    noise: bool = True  # per-pixel noise inputs (random in training, the stored maps in eval mode)
    truncation: float = 1.0  # ψ applied by forward: w_avg + ψ (w − w_avg)
    image_size: int = 64
    num_attributes: int = 0  # > 0: attribute-conditional; the attribute vector enters the mapping
    label_bank: int = 512  # conditional: attribute vectors of real faces kept to draw conditions from

    def validate(self) -> None:
        _check_choice(self, "arch", ("style",))
        _check_range(self, "num_attributes", 0, 1000)
        _check_range(self, "label_bank", 1, 65536)
        _check_range(self, "z_dim", 2, 1024)
        _check_range(self, "w_dim", 2, 1024)
        _check_range(self, "mapping_layers", 1, 8)
        _check_range(self, "width", 4, 256)
        _check_range(self, "max_channels", self.width if isinstance(self.width, int) else 4, 1024)
        _check_range(self, "convs_per_block", 1, 2)
        if not isinstance(self.noise, bool):
            raise ValueError(f"StyleGeneratorConfig.noise must be true or false, got {self.noise!r}")
        t = self.truncation
        if not isinstance(t, (int, float)) or isinstance(t, bool) or not 0.0 <= t <= 1.0:
            raise ValueError(f"StyleGeneratorConfig.truncation must be in [0, 1], got {t!r}")
        _check_image_size(self)


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate: N(0, 1) weights scaled at run time (StyleGAN).

    `lr_mul` slows a layer down under Adam (0.01 for the mapping network, as in StyleGAN).
    """

    def __init__(self, c_in: int, c_out: int, bias_init: float = 0.0, lr_mul: float = 1.0, act: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in) / lr_mul)
        self.bias = nn.Parameter(torch.full((c_out,), float(bias_init) / lr_mul))
        self.scale, self.lr_mul, self.act = lr_mul / math.sqrt(c_in), lr_mul, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
        return F.leaky_relu(out, 0.2) * math.sqrt(2) if self.act else out


class ModulatedConv(nn.Module):
    """StyleGAN2 weight (de)modulation, computed without per-sample weights.

    Scaling the input channels by the style s and the output channels by
    d = 1/√(Σ_{i,k} (w_oik s_i)²) equals a convolution with per-sample weights w·s·d, but runs as
    one ordinary convolution for the whole batch (no grouped conv), which is what a CPU wants.
    """

    def __init__(self, c_in: int, c_out: int, w_dim: int, kernel: int = 3, demodulate: bool = True,
                 up: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel, kernel))
        self.scale = 1 / math.sqrt(c_in * kernel * kernel)
        self.affine = EqualLinear(w_dim, c_in, bias_init=1.0)
        self.demodulate, self.up, self.padding = demodulate, up, kernel // 2

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        s = self.affine(w)
        weight = self.weight * self.scale
        x = x * s[:, :, None, None]
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        out = F.conv2d(x, weight, padding=self.padding)
        if self.demodulate:
            d = torch.rsqrt(s.square() @ weight.square().sum((2, 3)).t() + 1e-8)
            out = out * d[:, :, None, None]
        return out


class StyleLayer(nn.Module):
    """Modulated conv, optional noise input (learned strength), bias, leaky ReLU."""

    def __init__(self, c_in: int, c_out: int, w_dim: int, size: int, up: bool, noise: bool):
        super().__init__()
        self.conv = ModulatedConv(c_in, c_out, w_dim, up=up)
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.use_noise = noise
        if noise:
            self.noise_strength = nn.Parameter(torch.zeros(()))
            self.register_buffer("noise_const", torch.randn(1, 1, size, size))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        x = self.conv(x, w)
        if self.use_noise:
            noise = (torch.randn(x.shape[0], 1, *x.shape[2:], device=x.device, dtype=x.dtype) if self.training
                     else self.noise_const)  # eval: one fixed map, so a code always gives the same face
            x = x + noise * self.noise_strength
        return F.leaky_relu(x + self.bias.view(1, -1, 1, 1), 0.2) * math.sqrt(2)


class ToRGB(nn.Module):
    def __init__(self, c_in: int, w_dim: int):
        super().__init__()
        self.conv = ModulatedConv(c_in, 3, w_dim, kernel=1, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(3))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.conv(x, w) + self.bias.view(1, -1, 1, 1)


class StyleGenerator(nn.Module):
    """Style-based generator: z -> mapping MLP -> w; a learned 4×4 constant, then per resolution
    modulated convolutions fed by w and a to-RGB skip added to the upsampled image so far.

    `forward(z)` returns images in [-1, 1] (tanh), as `Generator` does, so everything that works
    in z works unchanged; `mapping` and `synthesis` expose w. `synthesis` takes one w per image
    (B, w_dim) or one per layer (B, num_ws, w_dim) for style mixing. `w_avg` (the mean w, tracked
    while training) is the centre of truncation.
    """

    W_AVG_BETA = 0.995

    def __init__(self, config: StyleGeneratorConfig | None = None):
        super().__init__()
        self.config = cfg = config or StyleGeneratorConfig()
        cfg.validate()
        layers: list[nn.Module] = []
        for i in range(cfg.mapping_layers):
            layers.append(EqualLinear(cfg.z_dim if i == 0 else cfg.w_dim, cfg.w_dim, lr_mul=0.01, act=True))
        self.mapping_net = nn.Sequential(*layers)
        if cfg.num_attributes:  # conditional (StyleGAN2-ADA style): embed(c), normalised, joins z
            self.embed = EqualLinear(cfg.num_attributes, cfg.w_dim)
            self.mapping_net[0] = EqualLinear(cfg.z_dim + cfg.w_dim, cfg.w_dim, lr_mul=0.01, act=True)
            # the joint attribute vectors of real training faces (filled by train_gan), so that drawn
            # conditions keep the attributes' correlations (Male with Goatee, not with Lipstick)
            self.register_buffer("labels", torch.zeros(cfg.label_bank, cfg.num_attributes))
        self.register_buffer("w_avg", torch.zeros(cfg.w_dim))
        sizes = [4 * 2 ** i for i in range(int(math.log2(cfg.image_size)) - 1)]  # 4, 8, ..., image_size
        chans = [min(cfg.width * (cfg.image_size // s), cfg.max_channels) for s in sizes]
        self.const = nn.Parameter(torch.randn(1, chans[0], 4, 4))
        blocks = [nn.ModuleList([StyleLayer(chans[0], chans[0], cfg.w_dim, 4, False, cfg.noise)])]
        for c_in, c, s in zip(chans[:-1], chans[1:], sizes[1:]):
            block = [StyleLayer(c_in, c, cfg.w_dim, s, True, cfg.noise)]
            block += [StyleLayer(c, c, cfg.w_dim, s, False, cfg.noise) for _ in range(cfg.convs_per_block - 1)]
            blocks.append(nn.ModuleList(block))
        self.blocks = nn.ModuleList(blocks)
        self.to_rgbs = nn.ModuleList([ToRGB(c, cfg.w_dim) for c in chans])
        self.num_ws = sum(len(b) for b in blocks) + 1  # each layer's w; a to-RGB takes the next layer's

    @property
    def z_dim(self) -> int:
        return self.config.z_dim

    @property
    def w_dim(self) -> int:
        return self.config.w_dim

    @property
    def conditional(self) -> bool:
        return self.config.num_attributes > 0

    def draw_conditions(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """`n` attribute vectors (0/1) of real faces from the label bank (a conditional G only)."""
        if not self.conditional:
            raise ValueError("this generator takes no attribute condition")
        pick = torch.randint(len(self.labels), (n,), generator=generator)
        return self.labels[pick.to(self.labels.device)]

    def mapping(self, z: torch.Tensor, truncation: float | None = None, c: torch.Tensor | None = None
                ) -> torch.Tensor:
        """z (and, if conditional, the attributes c (B, A) in 0/1; drawn from the label bank when
        None) -> w (B, w_dim); z is pixel-normalised first. Tracks w_avg in training mode."""
        x = z * torch.rsqrt(z.square().mean(1, keepdim=True) + 1e-8)
        if self.conditional:
            c = self.draw_conditions(len(z)) if c is None else c
            e = self.embed(c.to(z.dtype) * 2 - 1)
            x = torch.cat([x, e * torch.rsqrt(e.square().mean(1, keepdim=True) + 1e-8)], 1)
        elif c is not None:
            raise ValueError("this generator takes no attribute condition")
        w = self.mapping_net(x)
        if self.training:
            with torch.no_grad():
                self.w_avg.copy_(w.detach().float().mean(0).lerp(self.w_avg, self.W_AVG_BETA))
        psi = self.config.truncation if truncation is None else truncation
        return w if psi == 1 else self.w_avg.to(w.dtype).lerp(w, psi)

    def synthesis(self, w: torch.Tensor) -> torch.Tensor:
        """w (B, w_dim) or per-layer ws (B, num_ws, w_dim) -> images in [-1, 1]."""
        ws = w.unsqueeze(1).expand(-1, self.num_ws, -1) if w.ndim == 2 else w
        if ws.shape[1:] != (self.num_ws, self.config.w_dim):
            raise ValueError(f"synthesis takes w of shape (B, {self.config.w_dim}) or (B, {self.num_ws}, "
                             f"{self.config.w_dim}), got {tuple(w.shape)}")
        x = self.const.expand(ws.shape[0], -1, -1, -1)
        rgb, i = None, 0
        for block, to_rgb in zip(self.blocks, self.to_rgbs):
            for layer in block:
                x = layer(x, ws[:, i])
                i += 1
            y = to_rgb(x, ws[:, i])
            rgb = y if rgb is None else F.interpolate(rgb, scale_factor=2, mode="bilinear", align_corners=False) + y
        return torch.tanh(rgb)

    def forward(self, z: torch.Tensor, mixing: float = 0.0, c: torch.Tensor | None = None) -> torch.Tensor:
        """Images for z (and the condition c, if conditional). `mixing` (training only): the chance
        that the layers from a random cut on take the w of another random z (style-mixing
        regularisation, StyleGAN), with the same condition."""
        if self.conditional and c is None:
            c = self.draw_conditions(len(z))
        w = self.mapping(z, c=c)
        if mixing > 0 and self.training and float(torch.rand(())) < mixing:
            cut = int(torch.randint(1, self.num_ws, ()))
            w2 = self.mapping(torch.randn_like(z), c=c)
            ws = w.unsqueeze(1).repeat(1, self.num_ws, 1)
            ws[:, cut:] = w2.unsqueeze(1)
            return self.synthesis(ws)
        return self.synthesis(w)


class WSpaceGenerator(nn.Module):
    """A style generator seen from w: `forward(w)` is `synthesis(w)`, and `z_dim` is w's size.

    The engine edits faces in the space its generator takes, so wrapping a style G makes every
    job that moves a code and renders it (steering, sliders, directions, inversion, tuning) work
    in w, where attributes are less entangled than in z, without a branch of its own. Codes come
    from `sample_codes` (mapped prior z, as the faces G was trained to draw), not from N(0, I),
    and there is no sphere to keep them on (`code_space` says so).
    """

    code_space = "w"

    def __init__(self, style: StyleGenerator):
        super().__init__()
        self.style = style

    @property
    def z_dim(self) -> int:
        return self.style.w_dim

    @property
    def conditional(self) -> bool:
        return self.style.conditional

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self.style.synthesis(w)

    def sample_codes(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """`n` codes (CPU) of faces as G draws them: w = mapping(z), z ~ N(0, I) drawn with `generator`."""
        z = torch.randn(n, self.style.z_dim, generator=generator)
        c = self.style.draw_conditions(n, generator) if self.style.conditional else None
        with torch.no_grad():
            return self.style.mapping(z.to(self.style.const.device), c=c).float().cpu()


def edit_space(generator: nn.Module) -> nn.Module:
    """The generator as the engine edits with it: a style G in w (`WSpaceGenerator`), others as they are."""
    return WSpaceGenerator(generator) if isinstance(generator, StyleGenerator) else generator


# ---------------------------------------------------------------------------------------------
# FastGAN-style generator (Liu et al. 2021): one conv per resolution, skip-layer excitation


@dataclass
class FastGeneratorConfig:
    arch: str = "fast"  # tells a generator checkpoint which class to rebuild
    z_dim: int = 128
    width: int = 32  # channels at the last hidden resolution (image_size / 2); ×2 per halving, up to ×8
    image_size: int = 64
    upsample: str = "nearest"  # "bilinear": a smoothing 2× (no one-pixel checkerboard); same parameter shapes
    coarse_blocks: int = 0  # residual blocks after each of the 4×4, 8×8 and 16×16 stages (0 = FastGAN's G)
    UPSAMPLING: ClassVar[tuple[str, ...]] = ("nearest", "bilinear")
    COARSE_STAGES: ClassVar[int] = 3  # 4×4, 8×8, 16×16: where the layout is drawn, and convs are cheap

    def validate(self) -> None:
        _check_choice(self, "arch", ("fast",))
        _check_choice(self, "upsample", self.UPSAMPLING)
        _check_range(self, "z_dim", 2, 1024)
        _check_range(self, "width", 4, 256)
        _check_range(self, "coarse_blocks", 0, 8)
        _check_image_size(self)
        if self.image_size < 32:
            raise ValueError(f"FastGeneratorConfig.image_size must be at least 32 (its excitation skips span 8×), "
                             f"got {self.image_size}")


def _glu_block(c_in: int, c_out: int, upsample: str = "nearest") -> nn.Sequential:
    """2× upsampling, one 3×3 conv to 2·c_out, BN, GLU: FastGAN's single-conv up-block."""
    up = nn.Upsample(scale_factor=2, mode=upsample, **({"align_corners": False} if upsample == "bilinear" else {}))
    return nn.Sequential(up, nn.Conv2d(c_in, 2 * c_out, 3, 1, 1, bias=False),
                         nn.BatchNorm2d(2 * c_out), nn.GLU(dim=1))


class ResidualGluBlock(nn.Module):
    """x + conv(GLU(BN(conv(x)))), two 3×3 convs at one resolution. The second conv starts at zero,
    so the block starts as the identity: added to a trained G it draws the same faces, and from
    scratch it starts as the shallower G (SkipInit-style)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, 2 * channels, 3, 1, 1, bias=False), nn.BatchNorm2d(2 * channels),
                                  nn.GLU(dim=1), nn.Conv2d(channels, channels, 3, 1, 1, bias=False))
        self.start_as_identity()

    def start_as_identity(self) -> None:
        """Zero the output conv (an initialiser applied to the whole G calls this again afterwards)."""
        nn.init.zeros_(self.body[-1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SkipExcitation(nn.Module):
    """Skip-layer excitation: a low-resolution map, pooled to 4×4, gates a high-resolution map's
    channels (sigmoid, one gate per image and channel). The gradient reaches the early layers by a
    short path and the coarse layout can switch the fine layers' features on and off (style-like)."""

    def __init__(self, c_low: int, c_high: int):
        super().__init__()
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Conv2d(c_low, c_high, 4, 1, 0, bias=False), nn.SiLU(),
                                  nn.Conv2d(c_high, c_high, 1, 1, 0, bias=False), nn.Sigmoid())

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        return high * self.gate(low)


class FastGenerator(nn.Module):
    """FastGAN-style generator: z -> 4×4 (linear, BN, GLU) -> a single-conv GLU block per
    doubling -> 3×3 conv to RGB, tanh. Two skip-layer excitations tie the 4×4 map to the
    image_size/2 map and the 8×8 map to the image_size map (the paper pairs 8→128 and 16→256 at
    1,024 px; at 64 px the same 8× span is 4→32 and 8→64). A drop-in for `Generator`: z in,
    images in [-1, 1] out, and its BatchNorms fold for inference the same way.
    """

    def __init__(self, config: FastGeneratorConfig | None = None):
        super().__init__()
        self.config = cfg = config or FastGeneratorConfig()
        cfg.validate()
        n_up = int(math.log2(cfg.image_size)) - 2  # doublings 4 -> image_size
        # channels at 4, 8, ..., image_size: width at image_size/2, doubling per halving up to ×8
        chans = [cfg.width * 2 ** min(n_up - 1 - i, 3) for i in range(n_up)] + [max(cfg.width // 2, 4)]
        self.stem = nn.Sequential(nn.Linear(cfg.z_dim, 2 * chans[0] * 16, bias=False), nn.Unflatten(1, (2 * chans[0], 4, 4)),
                                  nn.BatchNorm2d(2 * chans[0]), nn.GLU(dim=1))
        self.ups = nn.ModuleList([_glu_block(c_in, c_out, cfg.upsample) for c_in, c_out in zip(chans[:-1], chans[1:])])
        # stage i (0 = 4×4) -> its residual blocks; absent when coarse_blocks is 0 (old checkpoints load unchanged)
        self.blocks = nn.ModuleDict({str(i): nn.Sequential(*[ResidualGluBlock(chans[i]) for _ in range(cfg.coarse_blocks)])
                                     for i in range(cfg.COARSE_STAGES) if cfg.coarse_blocks})
        # stage i (0 = 4×4) excites stage i + 3: 4 -> 32 and 8 -> 64 at 64 px
        self.excite = nn.ModuleDict({str(i + 3): SkipExcitation(chans[i], chans[i + 3]) for i in (0, 1)
                                     if i + 3 < len(chans)})
        self.to_rgb = nn.Sequential(nn.Conv2d(chans[-1], 3, 3, 1, 1), nn.Tanh())

    @property
    def z_dim(self) -> int:
        return self.config.z_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        feats = [self._deepen(0, self.stem(z))]
        for i, up in enumerate(self.ups, start=1):
            h = self._deepen(i, up(feats[-1]))
            if str(i) in self.excite:
                h = self.excite[str(i)](feats[i - 3], h)
            feats.append(h)
        return self.to_rgb(feats[-1])

    def _deepen(self, stage: int, h: torch.Tensor) -> torch.Tensor:
        return self.blocks[str(stage)](h) if str(stage) in self.blocks else h


# ---------------------------------------------------------------------------------------------
# Discriminator / critic


@dataclass
class DiscriminatorConfig:
    width: int = 64  # channels after the first stride-2 conv; doubles each stage
    norm: str = "spectral"  # "batch" (classic DCGAN), "spectral", "layer" (WGAN-GP safe), "none"
    image_size: int = 64
    num_attributes: int = 0  # > 0: projection discriminator for a conditional G (Miyato & Koyama 2018)
    downsample: str = "strided"  # "strided": 4×4 stride-2 convs (DCGAN); "pool": 3×3 conv + 2× average pooling
    reconstruct: bool = False  # self-supervised: decoders rebuild real images from the 16×16 and 8×8 features
    read_attributes: int = 0  # > 0: D also reads that many attributes of real faces (an auxiliary task; G stays unconditional)

    def validate(self) -> None:
        _check_range(self, "width", 4, 256)
        _check_range(self, "num_attributes", 0, 1000)
        _check_range(self, "read_attributes", 0, 1000)
        _check_choice(self, "norm", ("batch", "spectral", "layer", "none"))
        _check_choice(self, "downsample", ("strided", "pool"))
        _check_image_size(self)
        if not isinstance(self.reconstruct, bool):
            raise ValueError(f"DiscriminatorConfig.reconstruct must be true or false, got {self.reconstruct!r}")
        if self.reconstruct and self.image_size < 32:
            raise ValueError(f"DiscriminatorConfig.reconstruct needs image_size of at least 32, got {self.image_size}")


class Discriminator(nn.Module):
    """DCGAN discriminator: 4×4 stride-2 convs with LeakyReLU down to 4×4, then one logit.

    The logit is used raw: BCE-with-logits, hinge, or as a Wasserstein critic value. Batch norm
    must not be used with a gradient penalty (it couples samples), hence "layer" / "none".
    `downsample="pool"` halves each later stage by 2× average pooling before a 3×3 stride-1 conv,
    and the image by space-to-depth (2×2 pixels into 12 channels, nothing lost) before the first:
    on CPUs the strided 4×4 convs' backward gains little from bf16, the 3×3 ones gain the most.
    """

    def __init__(self, config: DiscriminatorConfig | None = None):
        super().__init__()
        self.config = cfg = config or DiscriminatorConfig()
        cfg.validate()
        n_down = int(math.log2(cfg.image_size)) - 2
        chans = [cfg.width * 2 ** min(i, 3) for i in range(n_down)]
        sn = spectral_norm if cfg.norm == "spectral" else (lambda m: m)
        pool = cfg.downsample == "pool"
        first = ([nn.PixelUnshuffle(2), sn(nn.Conv2d(12, chans[0], 3, 1, 1))] if pool
                 else [sn(nn.Conv2d(3, chans[0], 4, 2, 1))])
        layers: list[nn.Module] = [*first, nn.LeakyReLU(0.2, True)]
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            bias = cfg.norm not in ("batch", "layer")
            if pool:
                layers += [nn.AvgPool2d(2), sn(nn.Conv2d(c_in, c_out, 3, 1, 1, bias=bias))]
            else:
                layers.append(sn(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=bias)))
            if cfg.norm == "batch":
                layers.append(nn.BatchNorm2d(c_out))
            elif cfg.norm == "layer":
                layers.append(nn.GroupNorm(1, c_out))
            layers.append(nn.LeakyReLU(0.2, True))
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(sn(nn.Conv2d(chans[-1], 1, 4, 1, 0)), nn.Flatten())
        # projection: the logit also gets <embed(c), mean-pooled features>, so D judges "a real face
        # with these attributes", not just "a real face". The embedding is always spectrally
        # normalised: without it (a BatchNorm D) the projection alone overpowered G within 200 steps
        self.project = (spectral_norm(nn.Linear(cfg.num_attributes, chans[-1], bias=False))
                        if cfg.num_attributes else None)
        # stage i's output is image_size / 2^(i+1) pixels wide: the 16×16 and the 8×8 stages
        self.tap = {int(math.log2(cfg.image_size)) - 5 + k: name for k, name in enumerate(("part", "whole"))}
        self.decoders = (nn.ModuleDict({name: _decoder(chans[i]) for i, name in self.tap.items()})
                         if cfg.reconstruct else None)
        # the attribute reader: what the last features say about glasses, hats, age..., learnt from
        # the real faces' labels so that D's features tell those kinds apart (registered last, so a
        # run's D can gain it on resume)
        self.reader = nn.Linear(chans[-1], cfg.read_attributes) if cfg.read_attributes else None

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None, reconstruct: bool = False,
                read: bool = False) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """The logit per image; with `reconstruct=True` also the self-supervised loss on `x`
        (mean L1 of the whole image at 32×32 from the 8×8 features, and of a random quadrant at
        32×32 from that quadrant of the 16×16 features: Liu et al. 2021, with L1 for their LPIPS,
        which needs pretrained weights). Only real images should be reconstructed. With `read=True`
        also the attribute reader's logits (N, read_attributes), after the loss when both are asked.
        """
        if read and self.reader is None:
            raise ValueError("this discriminator reads no attributes (DiscriminatorConfig.read_attributes)")
        if not reconstruct:
            h = self.features(x)
        else:
            if self.decoders is None:
                raise ValueError("this discriminator has no decoders (DiscriminatorConfig.reconstruct)")
            h, taps, stage = x, {}, -1
            for layer in self.features:
                h = layer(h)
                if isinstance(layer, nn.LeakyReLU):
                    stage += 1
                    if stage in self.tap:
                        taps[self.tap[stage]] = h
        out = self.head(h).squeeze(1)
        if self.project is not None:
            if c is None:
                raise ValueError("this discriminator is conditional: pass the attributes c")
            out = out + (self.project(c.to(h.dtype) * 2 - 1) * h.mean((2, 3))).sum(1)
        extras = [self._reconstruction_loss(x, taps)] if reconstruct else []
        if read:
            extras.append(self.reader(h.mean((2, 3))))
        return (out, *extras) if extras else out

    def _reconstruction_loss(self, x: torch.Tensor, taps: dict[str, torch.Tensor]) -> torch.Tensor:
        target = x.float()
        whole = self.decoders["whole"](taps["whole"]).float()
        loss = (whole - _resized(target, whole.shape[-1])).abs().mean()
        part = taps["part"]
        q = int(torch.randint(4, ()))  # which quadrant, one per batch as in the paper
        hs, ws = part.shape[-2] // 2, part.shape[-1] // 2
        r, col = divmod(q, 2)
        rebuilt = self.decoders["part"](part[..., r * hs:(r + 1) * hs, col * ws:(col + 1) * ws]).float()
        size_h, size_w = target.shape[-2] // 2, target.shape[-1] // 2
        quadrant = target[..., r * size_h:(r + 1) * size_h, col * size_w:(col + 1) * size_w]
        return loss + (rebuilt - _resized(quadrant, rebuilt.shape[-1])).abs().mean()


def _decoder(c_in: int) -> nn.Sequential:
    """A small decoder from an 8×8 D feature map to a 32×32 RGB image: two GLU up-blocks (halving
    the channels, at least 16), then a 3×3 conv and tanh."""
    layers: list[nn.Module] = []
    c = c_in
    for _ in range(2):
        layers.append(_glu_block(c, max(c // 2, 16)))
        c = max(c // 2, 16)
    return nn.Sequential(*layers, nn.Conv2d(c, 3, 3, 1, 1), nn.Tanh())


def _resized(x: torch.Tensor, size: int) -> torch.Tensor:
    return x if x.shape[-1] == size else F.interpolate(x, size=(size, size), mode="area")


# ---------------------------------------------------------------------------------------------
# Shared residual backbone for the classifier and the encoder


class ResBlock(nn.Module):
    """Basic residual block (conv-BN-ReLU-conv-BN + shortcut), optionally stride 2.

    The shortcut downsamples by 2×2 average pooling then a 1×1 conv (ResNet-D), which keeps all
    of the input; it also avoids a crash of torch 2.14.1's CPU backward for strided 1×1 convs on
    channels-last tensors with few channels.
    """

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(True),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.skip = (
            nn.Identity()
            if stride == 1 and c_in == c_out
            else nn.Sequential(nn.AvgPool2d(stride) if stride > 1 else nn.Identity(),
                               nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
        )
        self.act = nn.ReLU(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.skip(x))


class Backbone(nn.Module):
    """64×64 image -> a list of feature maps at 32, 16, 8, 4 px; cheap enough for a laptop CPU."""

    def __init__(self, width: int, image_size: int):
        super().__init__()
        n_stages = int(math.log2(image_size)) - 2
        chans = [width * 2 ** min(i, 3) for i in range(n_stages)]  # e.g. 32, 64, 128, 256
        self.stem = nn.Sequential(nn.Conv2d(3, chans[0] // 2, 3, 1, 1, bias=False), nn.BatchNorm2d(chans[0] // 2), nn.ReLU(True))
        c_prev = chans[0] // 2
        stages = []
        for c in chans:
            stages.append(ResBlock(c_prev, c, 2))
            c_prev = c
        self.stages = nn.ModuleList(stages)
        self.out_channels = c_prev

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = []
        h = self.stem(x)
        for stage in self.stages:
            h = stage(h)
            maps.append(h)
        return maps


# ---------------------------------------------------------------------------------------------
# Classifier


@dataclass
class ClassifierConfig:
    num_attributes: int = 40
    width: int = 32
    dropout: float = 0.2
    image_size: int = 64

    def validate(self) -> None:
        _check_range(self, "num_attributes", 1, 1000)
        _check_range(self, "width", 4, 256)
        if not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ClassifierConfig.dropout must be in [0, 1), got {self.dropout!r}")
        _check_image_size(self)


class Classifier(nn.Module):
    """Multi-label attribute classifier: one logit per CelebA attribute.

    `features` (the pooled penultimate vector) feeds FD_cls; `feature_maps` (intermediate
    activations) is the perceptual loss for inversion, in place of a downloaded VGG.
    """

    def __init__(self, config: ClassifierConfig | None = None):
        super().__init__()
        self.config = cfg = config or ClassifierConfig()
        cfg.validate()
        self.backbone = Backbone(cfg.width, cfg.image_size)
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(self.backbone.out_channels, cfg.num_attributes)

    @property
    def feature_dim(self) -> int:
        return self.backbone.out_channels

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.backbone(x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)[-1].mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))


# ---------------------------------------------------------------------------------------------
# Encoder


@dataclass
class EncoderConfig:
    z_dim: int = 128
    width: int = 32
    image_size: int = 64

    def validate(self) -> None:
        _check_range(self, "z_dim", 2, 1024)
        _check_range(self, "width", 4, 256)
        _check_image_size(self)


class Encoder(nn.Module):
    """Image -> z for GAN inversion: the residual backbone, then a linear map to z_dim."""

    def __init__(self, config: EncoderConfig | None = None):
        super().__init__()
        self.config = cfg = config or EncoderConfig()
        cfg.validate()
        self.backbone = Backbone(cfg.width, cfg.image_size)
        c = self.backbone.out_channels
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c * 16, c * 2), nn.LeakyReLU(0.2, True), nn.Linear(c * 2, cfg.z_dim))

    @property
    def z_dim(self) -> int:
        return self.config.z_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x)[-1])


# ---------------------------------------------------------------------------------------------
# Evaluator: the independent yardstick


@dataclass
class EvaluatorConfig:
    num_attributes: int = 40
    width: int = 24  # channels of the stem; the stages use 2×, 4×, 8×
    dropout: float = 0.3
    image_size: int = 64

    def validate(self) -> None:
        _check_range(self, "num_attributes", 1, 1000)
        _check_range(self, "width", 4, 128)
        if not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"EvaluatorConfig.dropout must be in [0, 1), got {self.dropout!r}")
        _check_image_size(self)


def _conv_bn_silu(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.SiLU(True)]


class Evaluator(nn.Module):
    """A second 40-attribute classifier that grades edits; nothing that makes an edit may use it.

    Why a different family: an edit optimised against the steering classifier (a ResNet) can
    exploit that network's blind spots; a plain VGG-style stack (no skips, max-pool downsampling,
    SiLU, average + max pooled head), trained with another seed and strong augmentation, does not
    share them. Only `training/evaluate*` load it (a test keeps the engine from reaching it).
    """

    def __init__(self, config: EvaluatorConfig | None = None):
        super().__init__()
        self.config = cfg = config or EvaluatorConfig()
        cfg.validate()
        w = cfg.width
        n_pools = int(math.log2(cfg.image_size)) - 3  # stride-2 stem, then pools down to 4×4
        chans = [w * 2 ** min(i + 1, 3) for i in range(n_pools)]  # e.g. 48, 96, 192, 192
        layers: list[nn.Module] = _conv_bn_silu(3, w, stride=2)
        c_prev = w
        for i, c in enumerate(chans):
            layers += _conv_bn_silu(c_prev, c)
            if i > 0:
                layers += _conv_bn_silu(c, c)
            layers.append(nn.MaxPool2d(2))
            c_prev = c
        self.body = nn.Sequential(*layers)
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(2 * c_prev, cfg.num_attributes)

    @property
    def feature_dim(self) -> int:
        return self.head.in_features

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        return torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))


MODEL_KINDS: dict[str, tuple[type[nn.Module], type]] = {
    "generator": (Generator, GeneratorConfig),
    "discriminator": (Discriminator, DiscriminatorConfig),
    "classifier": (Classifier, ClassifierConfig),
    "encoder": (Encoder, EncoderConfig),
    "evaluator": (Evaluator, EvaluatorConfig),
}
# Generators other than the DCGAN, by the `arch` their config names (a config without one is a DCGAN)
GENERATOR_ARCHS: dict[str, tuple[type[nn.Module], type]] = {"style": (StyleGenerator, StyleGeneratorConfig),
                                                             "fast": (FastGenerator, FastGeneratorConfig)}


def model_classes(kind: str, config: dict) -> tuple[type[nn.Module], type]:
    """The model and config classes that rebuild a checkpoint of `kind` from its `config`."""
    if kind == "generator" and isinstance(config, dict) and "arch" in config:
        arch = config["arch"]
        if arch not in GENERATOR_ARCHS:
            raise ValueError(f"unknown generator arch {arch!r} (known: {', '.join(GENERATOR_ARCHS)}, or none for DCGAN)")
        return GENERATOR_ARCHS[arch]
    return MODEL_KINDS[kind]


# ---------------------------------------------------------------------------------------------
# Frozen models for the app: BatchNorm folded into the layer before it, channels-last memory


def _bn_scale_shift(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


def _folded(layer: nn.Module, bn: nn.BatchNorm2d, repeat: int = 1) -> nn.Module:
    """A copy of `layer` whose output equals bn(layer(x)) in eval mode.

    `repeat` is the number of consecutive outputs per BN channel (a Linear feeding an Unflatten).
    """
    scale, shift = _bn_scale_shift(bn)
    scale, shift = scale.repeat_interleave(repeat), shift.repeat_interleave(repeat)
    if isinstance(layer, nn.Linear):
        new = nn.Linear(layer.in_features, layer.out_features, bias=True)
        out_axis = 0
    elif isinstance(layer, nn.ConvTranspose2d):
        new = nn.ConvTranspose2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                                 layer.padding, layer.output_padding, layer.groups, True, layer.dilation)
        out_axis = 1
    else:
        new = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
                        layer.dilation, layer.groups, True, layer.padding_mode)
        out_axis = 0
    shape = [1] * layer.weight.ndim
    shape[out_axis] = -1
    bias = layer.bias if layer.bias is not None else torch.zeros_like(scale)
    new.weight.data = layer.weight * scale.view(shape)
    new.bias.data = bias * scale + shift
    return new.to(layer.weight.device)


_FOLDABLE = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every eval-mode BatchNorm2d into the conv/linear layer before it, in place.

    Patterns (inside nn.Sequential): layer→BN, Sequential(…, layer)→BN (an upsampling block) and
    Linear→Unflatten→BN (the generator's stem). At batch 1 on a CPU a step's cost is mostly
    per-op overhead, so every op removed counts. Only for frozen models: the BN statistics are
    baked in.
    """
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        for i in range(1, len(seq)):
            bn = seq[i]
            if not isinstance(bn, nn.BatchNorm2d) or not bn.track_running_stats or bn.running_var is None:
                continue
            prev, repeat, owner, key = seq[i - 1], 1, seq, str(i - 1)
            if isinstance(prev, nn.Unflatten) and i >= 2 and isinstance(seq[i - 2], nn.Linear):
                prev, key = seq[i - 2], str(i - 2)
                repeat = prev.out_features // bn.num_features
            elif isinstance(prev, nn.Sequential) and len(prev) and isinstance(prev[-1], _FOLDABLE):
                owner, key, prev = prev, str(len(prev) - 1), prev[-1]
            if not isinstance(prev, _FOLDABLE) or hasattr(prev, "parametrizations"):
                continue
            setattr(owner, key, _folded(prev, bn, repeat))
            seq[i] = nn.Identity()
    return model


def prepare_for_inference(model: nn.Module) -> nn.Module:
    """Frozen, BN-folded, channels-last copy of a model for the app's jobs (CPU and CUDA alike).

    At batch 1 on a CPU this roughly halves a G+C forward+backward (resources/MODELS.md). The
    copy remembers the hash of the weights it came from, so directions and encoders fitted for
    the original still pair with it (`core.model_hash.state_hash`).
    """
    source = state_hash(model)
    fast = fold_batchnorm(copy.deepcopy(model).eval())
    fast = fast.to(memory_format=torch.channels_last).requires_grad_(False)
    fast.source_hash = source
    return fast
