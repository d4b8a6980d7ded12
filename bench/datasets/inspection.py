"""The embedded default: a procedural connector-pin inspection set (no file, no download).

A top-down camera looks at a connector housing with a 9 x 3 grid of pins (9 rows, 3 columns),
the layout the reference experiment's codes imply. Images are 39 rows x 36 columns
(``h=39, w=36``: the 9 pin rows run down the long side), grayscale, 1,404 values flattened,
the size of the reference data.

Classes: ``"0"`` is a good part (every pin good); ``"rc"`` for each of the 18 reference codes
means the pin at row ``r``, column ``c`` is defective, either

* retracted (pushed back into the housing): its tip is shorter and dimmer, or
* tilted: its tip is displaced in a random direction and smeared along it,

with a magnitude in ``[magnitude_min, magnitude_max]`` (1 = a gross defect), skewed so gross
defects are common and subtle ones rare (``magnitude_power``); the low end is deliberately
close to the natural pin-to-pin variation of good parts, which is what makes good parts and
subtle defects confusable, the phenomenon the reference saw.

Every image also gets camera jitter (sub-pixel shift, small rotation and scale), an
illumination gain and gradient, and sensor noise. Everything is rendered for the whole batch
with tensor ops (a loop over the 27 pins only), deterministically for a seed.

Calibration (defaults, 2,300 images): a softmax classifier on the shared MLP trunk
(1,404 -> 512 -> 256 -> 256 -> 128, 600 Adam steps at lr 1e-3, 192 class-balanced images a
step, 60/15/25 split) reaches about 0.82-0.93 test accuracy (mean 0.90 over 4 seeds), about
two thirds of its errors being good parts and defects taken for each other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from bench.core.errors import BenchError
from bench.datasets.image_set import ImageSet
from bench.datasets.recommended import register_recommended
from bench.datasets.registry import register_dataset
from bench.datasets.validate import check_image_set

ROWS, COLS = 9, 3
DEFECT_CODES: tuple[str, ...] = (
    "11", "13", "21", "23", "31", "32", "33", "42", "61",
    "62", "63", "71", "72", "73", "81", "82", "91", "92",
)  # fmt: skip
CLASSES: tuple[str, ...] = ("0", *DEFECT_CODES)


#: The tuning the set's recommended parameters come from (``bench run --all`` runs them). After a
#: new tuning, point this at its directory and copy its ``tuned.toml`` over
#: ``recommended_params/inspection.toml``; ``tests/test_recommended.py`` checks the two agree.
INSPECTION_TUNING = "results/study-inspection/tune"
RECOMMENDED = register_recommended("inspection", "inspection.toml", tuned_in=INSPECTION_TUNING)


@dataclass(frozen=True)
class InspectionConfig:
    """Everything that shapes the generated set; the defaults are the calibrated benchmark.

    Attributes:
        seed: generator seed; the same config gives a bit-identical tensor.
        n_per_defect: images of each of the 18 defect classes.
        good_ratio: good images per image of each defect class (production-like: 5).
        n_good: images of the good class; overrides ``good_ratio`` when set.
        height, width: image size in pixels.
        row_pitch, col_pitch: pin spacing in pixels (rows run down, columns across).
        tip_length, tip_width: Gaussian sigma of a good pin tip across / down, in pixels.
        tip_brightness: peak value of a good tip before gain.
        housing, cavity, backdrop: gray levels of the housing, the pin cavities, the bench.
        magnitude_min, magnitude_max: range of the defect magnitude.
        magnitude_power: the magnitude is ``min + (max - min) * u ** power`` with ``u`` uniform;
            a power below 1 makes gross defects common and subtle ones rare but present
            (production-like), 1 makes the magnitude uniform.
        tilt_fraction: share of defects that are tilts (the rest are retractions).
        retract_dim: brightness a retracted tip loses at magnitude 1 (fraction).
        retract_shorten: tip length a retracted tip loses at magnitude 1 (fraction).
        tilt_shift: tip displacement of a tilted pin at magnitude 1, in pixels.
        tilt_smear: extra sigma along the tilt at magnitude 1, in pixels.
        pin_position_sd, pin_size_sd, pin_brightness_sd: natural variation of every pin
            (position in pixels, size and brightness as fractions).
        shift_max: camera shift, uniform in +/- this many pixels on each axis.
        rotation_max_deg: camera rotation, uniform in +/- degrees.
        scale_max: camera scale, uniform in 1 +/- this.
        gain_min, gain_max: illumination gain, uniform.
        gradient_max: illumination gradient across the image, uniform in +/- this fraction.
        noise_sd: sensor noise (Gaussian, in gray levels of [0, 1]).
    """

    seed: int = 0
    n_per_defect: int = 100
    good_ratio: float = 5.0
    n_good: int | None = None
    height: int = 39
    width: int = 36
    row_pitch: float = 3.9
    col_pitch: float = 10.0
    tip_length: float = 3.0
    tip_width: float = 1.1
    tip_brightness: float = 0.8
    housing: float = 0.25
    cavity: float = 0.08
    backdrop: float = 0.05
    magnitude_min: float = 0.05
    magnitude_max: float = 1.0
    magnitude_power: float = 0.3
    tilt_fraction: float = 0.5
    retract_dim: float = 0.95
    retract_shorten: float = 0.5
    tilt_shift: float = 3.0
    tilt_smear: float = 1.0
    pin_position_sd: float = 0.04
    pin_size_sd: float = 0.02
    pin_brightness_sd: float = 0.02
    shift_max: float = 0.2
    rotation_max_deg: float = 0.5
    scale_max: float = 0.008
    gain_min: float = 0.85
    gain_max: float = 1.15
    gradient_max: float = 0.05
    noise_sd: float = 0.015

    @property
    def good_count(self) -> int:
        return self.n_good if self.n_good is not None else int(round(self.good_ratio * self.n_per_defect))


@register_dataset("inspection")
def load_inspection(**options) -> ImageSet:
    """The procedural connector-pin inspection set (the harness default).

    Args:
        **options: any field of :class:`InspectionConfig` (``seed``, ``n_per_defect``,
            ``good_ratio``, ``n_good``, ``noise_sd``...). Defaults: 500 good + 18 x 100 defect
            images (2,300), 39 x 36 pixels.

    Returns:
        The image set, classes ``("0", "11", ..., "92")``, ``good_index=0``.

    Raises:
        BenchError: an unknown option or an impossible count.
    """
    known = {f.name for f in fields(InspectionConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise BenchError(
            f"inspection has no option {', '.join(unknown)}; known options: {', '.join(sorted(known))}"
        )
    return generate_inspection(InspectionConfig(**options))


def generate_inspection(config: InspectionConfig) -> ImageSet:
    """Render the inspection set described by ``config`` (see the module docstring).

    Raises:
        BenchError: a non-positive class count, magnitude range or image size.
    """
    cfg = config
    if cfg.n_per_defect < 1 or cfg.good_count < 1:
        raise BenchError(
            f"inspection needs >= 1 image per class (n_per_defect={cfg.n_per_defect}, "
            f"good={cfg.good_count}); raise n_per_defect, good_ratio or n_good"
        )
    if not 0 <= cfg.magnitude_min <= cfg.magnitude_max:
        raise BenchError(
            f"inspection magnitude range [{cfg.magnitude_min}, {cfg.magnitude_max}] is empty; "
            "use 0 <= magnitude_min <= magnitude_max"
        )
    if cfg.height < 8 or cfg.width < 8:
        raise BenchError(f"inspection images of {cfg.height}x{cfg.width} are too small; use at least 8x8")

    g = torch.Generator().manual_seed(int(cfg.seed))
    counts = torch.tensor([cfg.good_count] + [cfg.n_per_defect] * len(DEFECT_CODES))
    # Shuffled order, so code that takes "the first k images" does not get one class only.
    labels = torch.repeat_interleave(torch.arange(len(CLASSES)), counts)
    labels = labels[torch.randperm(len(labels), generator=g)]
    n = len(labels)

    def uniform(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(*shape, generator=g)

    def normal(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g)

    # Nominal pin centres in image coordinates (pixel centres at integers), pin p = 3*(r-1)+(c-1).
    rows = torch.arange(ROWS, dtype=torch.float32).repeat_interleave(COLS)
    cols = torch.arange(COLS, dtype=torch.float32).repeat(ROWS)
    mid_y, mid_x = (cfg.height - 1) / 2.0, (cfg.width - 1) / 2.0
    pin_y0 = mid_y + (rows - (ROWS - 1) / 2.0) * cfg.row_pitch
    pin_x0 = mid_x + (cols - (COLS - 1) / 2.0) * cfg.col_pitch

    # Per-image, per-pin tip parameters (n, 27): natural variation first.
    pin_x = pin_x0 + cfg.pin_position_sd * normal(n, ROWS * COLS)
    pin_y = pin_y0 + cfg.pin_position_sd * normal(n, ROWS * COLS)
    amp = cfg.tip_brightness * (1.0 + cfg.pin_brightness_sd * normal(n, ROWS * COLS))
    sx = cfg.tip_length * (1.0 + cfg.pin_size_sd * normal(n, ROWS * COLS))
    sy = cfg.tip_width * (1.0 + cfg.pin_size_sd * normal(n, ROWS * COLS))

    # The defect: one pin per defective image, a mode and a magnitude.
    defect_pin = torch.tensor([-1] + [3 * (int(c[0]) - 1) + int(c[1]) - 1 for c in DEFECT_CODES])[labels]
    hit = torch.zeros(n, ROWS * COLS)
    is_defect = defect_pin >= 0
    hit[is_defect, defect_pin[is_defect]] = 1.0
    magnitude = uniform(0.0, 1.0, n) ** cfg.magnitude_power
    magnitude = cfg.magnitude_min + (cfg.magnitude_max - cfg.magnitude_min) * magnitude
    tilted = (torch.rand(n, generator=g) < cfg.tilt_fraction).float()
    tilt_dir = uniform(0.0, 2.0 * math.pi, n)
    m_retract = hit * (magnitude * (1.0 - tilted))[:, None]
    m_tilt = hit * (magnitude * tilted)[:, None]

    # Retracted: the tip sits deeper, so it is dimmer and shows less of its length.
    amp = amp * (1.0 - cfg.retract_dim * m_retract)
    sx = sx * (1.0 - cfg.retract_shorten * m_retract)
    # Tilted: the tip moves off its seat and its image smears along the tilt.
    shift = cfg.tilt_shift * m_tilt
    pin_x = pin_x + shift * torch.cos(tilt_dir)[:, None]
    pin_y = pin_y + shift * torch.sin(tilt_dir)[:, None]
    smear2 = (cfg.tilt_smear * m_tilt) ** 2
    dx_u, dy_u = torch.cos(tilt_dir)[:, None], torch.sin(tilt_dir)[:, None]
    # Tip covariance: the blade's own axes, the smear along the tilt, and the pixel footprint
    # (variance 1/12 of a unit box) so narrow tips are not aliased by point sampling.
    c_xx = sx**2 + smear2 * dx_u**2 + 1.0 / 12.0
    c_yy = sy**2 + smear2 * dy_u**2 + 1.0 / 12.0
    c_xy = smear2 * dx_u * dy_u
    det = c_xx * c_yy - c_xy**2
    # A smeared tip spreads the same light over a larger area, so its peak drops.
    amp = amp * torch.sqrt((sx**2 + 1.0 / 12.0) * (sy**2 + 1.0 / 12.0) / det)
    i_xx, i_yy, i_xy = c_yy / det, c_xx / det, -c_xy / det

    # Camera jitter: map every pixel of every image back into the connector's frame.
    theta = torch.deg2rad(uniform(-cfg.rotation_max_deg, cfg.rotation_max_deg, n))
    scale = uniform(1.0 - cfg.scale_max, 1.0 + cfg.scale_max, n)
    tx = uniform(-cfg.shift_max, cfg.shift_max, n)
    ty = uniform(-cfg.shift_max, cfg.shift_max, n)
    py = torch.arange(cfg.height, dtype=torch.float32)[None, :, None]
    px = torch.arange(cfg.width, dtype=torch.float32)[None, None, :]
    cos_t, sin_t = (torch.cos(theta) / scale)[:, None, None], (torch.sin(theta) / scale)[:, None, None]
    ux, uy = px - mid_x - tx[:, None, None], py - mid_y - ty[:, None, None]
    qx = mid_x + cos_t * ux + sin_t * uy  # (n, h, w)
    qy = mid_y - sin_t * ux + cos_t * uy

    # Housing with one dark cavity per pin: distance to the nearest pin seat, no loop needed.
    def soft_box(d: torch.Tensor, half: float, edge: float = 0.6) -> torch.Tensor:
        return torch.sigmoid((half - d.abs()) / edge)

    row_of = ((qy - pin_y0[0]) / cfg.row_pitch).round().clamp(0, ROWS - 1)
    col_of = ((qx - pin_x0[0]) / cfg.col_pitch).round().clamp(0, COLS - 1)
    seat_dy = qy - (pin_y0[0] + row_of * cfg.row_pitch)
    seat_dx = qx - (pin_x0[0] + col_of * cfg.col_pitch)
    cavity = soft_box(seat_dx, 0.32 * cfg.col_pitch) * soft_box(seat_dy, 0.36 * cfg.row_pitch)
    body_half_y = (ROWS - 1) / 2.0 * cfg.row_pitch + 0.6 * cfg.row_pitch
    body_half_x = (COLS - 1) / 2.0 * cfg.col_pitch + 0.6 * cfg.col_pitch
    body = soft_box(qy - mid_y, body_half_y) * soft_box(qx - mid_x, body_half_x)
    images = cfg.backdrop + body * ((cfg.housing - cfg.backdrop) - (cfg.housing - cfg.cavity) * cavity)

    # Pin tips: a loop over the 27 pins, each step rendering that pin in every image at once.
    # A tip only lights pixels near its seat (within jitter + tilt + 3.5 sigma), so each pin is
    # drawn in a window around its seat rather than over the whole frame.
    reach = cfg.tilt_shift * cfg.magnitude_max + 1.0
    spread = 3.5 * (1.0 + 3.0 * cfg.pin_size_sd)
    half_r = math.ceil(reach + spread * math.hypot(cfg.tip_width, cfg.tilt_smear, 0.3))
    half_c = math.ceil(reach + spread * math.hypot(cfg.tip_length, cfg.tilt_smear, 0.3))
    for p in range(ROWS * COLS):
        r0, c0 = int(round(float(pin_y0[p]))), int(round(float(pin_x0[p])))
        rs = slice(max(r0 - half_r, 0), min(r0 + half_r + 1, cfg.height))
        cs = slice(max(c0 - half_c, 0), min(c0 + half_c + 1, cfg.width))
        dx = qx[:, rs, cs] - pin_x[:, p, None, None]
        dy = qy[:, rs, cs] - pin_y[:, p, None, None]
        quad = i_xx[:, p, None, None] * dx**2 + 2 * i_xy[:, p, None, None] * dx * dy
        quad = quad + i_yy[:, p, None, None] * dy**2
        images[:, rs, cs] += amp[:, p, None, None] * torch.exp(-0.5 * quad)

    # Illumination (gain and a linear gradient in a random direction), then sensor noise.
    gain = uniform(cfg.gain_min, cfg.gain_max, n)[:, None, None]
    grad_dir = uniform(0.0, 2.0 * math.pi, n)[:, None, None]
    grad = uniform(-cfg.gradient_max, cfg.gradient_max, n)[:, None, None]
    ramp = torch.cos(grad_dir) * (px - mid_x) / cfg.width + torch.sin(grad_dir) * (py - mid_y) / cfg.height
    images = images * gain * (1.0 + 2.0 * grad * ramp)
    images = (images + cfg.noise_sd * normal(n, cfg.height, cfg.width)).clamp(0.0, 1.0)

    return check_image_set(
        ImageSet(
            images=images.contiguous(),
            labels=labels,
            classes=CLASSES,
            good_index=0,
            name="inspection",
            source=(
                f"procedural connector pins 9x3, {cfg.height}x{cfg.width} px, seed {cfg.seed} "
                f"(bench.datasets.inspection)"
            ),
        )
    )
