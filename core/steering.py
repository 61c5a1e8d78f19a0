"""Classifier-gradient steering: gradient ascent on z with the generator and classifier frozen.

score(z) = Σᵢ wᵢ·logitᵢ(G(z)) − λ·Σⱼ |logitⱼ(G(z)) − logitⱼ(G(z₀))|
over target attributes i (w > 0: more, w < 0: less) and preserved attributes j (default all
others). Each step moves z by `step_size` along the normalised ascent direction, then puts z
back on the prior's typical sphere so G never sees an out-of-distribution code. A face stops
moving once all its targets are reached (`until`), so it is not pushed further than asked.

Refinements over plain ascent, each measured with `python main.py eval-control` (numbers in
resources/MODELS.md, graded by the independent evaluator and dlib): the part of the preservation
gradient that opposes the target is projected out, λ fades to 0 over the step budget, step
directions are averaged with momentum, an identity term pulls towards the starting face in the
classifier's feature maps, and `guide` leans on the attribute's global direction.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from core.data import to_uint8
from core.latent import on_sphere, renormalise
from core.losses import maps_distance, normalised_maps


# (dx, dy, mirror) of each view; the first is the face itself
VIEWS = ((0, 0, False), (0, 0, True), (2, 0, False), (-2, 1, True), (1, -2, False), (-1, 2, True), (0, 2, False),
         (2, -1, True))


def view_batch(images: torch.Tensor, k: int) -> torch.Tensor:
    """(N, 3, H, W) -> (k·N, 3, H, W): the first `k` VIEWS of every image (reflection at the border)."""
    pad = 2
    padded = F.pad(images, (pad, pad, pad, pad), mode="reflect") if k > 2 else images
    h, w = images.shape[-2:]
    out = []
    for dx, dy, mirror in VIEWS[:k]:
        v = padded[..., pad + dy:pad + dy + h, pad + dx:pad + dx + w] if (dx or dy) else images
        out.append(v.flip(3) if mirror else v)
    return torch.cat(out)


def read_logits(classifier: nn.Module, images: torch.Tensor, views: int = 1) -> torch.Tensor:
    """The classifier's logits (N, A), averaged over `views` transforms of each image."""
    if views == 1:
        return classifier(images).float()
    n = images.shape[0]
    return classifier(view_batch(images, views)).float().view(views, n, -1).mean(0)


@dataclass
class SteerConfig:
    steps: int = 30
    step_size: float = 0.8  # length of one step in z (the prior's typical norm is √d ≈ 11.3)
    preserve_weight: float = 0.2  # λ (with momentum 0, λ = 0 is the plain seed method)
    # stop a face once every target is reached with this confidence: p > until for 'more',
    # p < 1 - until for 'less' (None: run all steps)
    until: float | None = 0.5
    renormalise: bool = True
    project_conflicts: bool = True  # False: the plain penalised score, whose gradient may undo the target
    momentum: float = 0.7  # heavy-ball averaging of the step directions (0 = plain ascent)
    fade_preservation: bool = True  # λ falls linearly to 0 over the step budget, so a face that needs
    # a large change (e.g. Bald) still gets there, while quick edits keep the full preservation
    views: int = 1  # the classifier reads each face in this many small transforms (flips, 1–2 px
    # shifts) and steering follows their mean logit: a change that only fools one view does not count
    identity_weight: float = 0.0  # keep the face: weight of a pull towards the starting face in our
    # classifier's mid-level feature maps (as inversion's perceptual loss), scaled to the target's pull
    guide: float = 0.0  # weight of the global direction (`prior`) against the local gradient, both unit

    def override(self, **values: object) -> "SteerConfig":
        """A copy with the given fields replaced; None means "keep" (unset command-line options)."""
        return replace(self, **{k: v for k, v in values.items() if v is not None})

    def validate(self) -> None:
        if not (isinstance(self.steps, int) and 1 <= self.steps <= 10_000):
            raise ValueError(f"steps must be an integer in [1, 10000], got {self.steps!r}")
        if not (math.isfinite(self.step_size) and 0 < self.step_size <= 10):
            raise ValueError(f"step_size must be in (0, 10], got {self.step_size!r}")
        if not (math.isfinite(self.preserve_weight) and self.preserve_weight >= 0):
            raise ValueError(f"preserve_weight must be ≥ 0, got {self.preserve_weight!r}")
        if self.until is not None and not 0 < self.until < 1:
            raise ValueError(f"until must be a probability in (0, 1), got {self.until!r}")
        if not (math.isfinite(self.identity_weight) and self.identity_weight >= 0):
            raise ValueError(f"identity_weight must be ≥ 0, got {self.identity_weight!r}")
        if not (math.isfinite(self.guide) and self.guide >= 0):
            raise ValueError(f"guide must be ≥ 0, got {self.guide!r}")
        if not (isinstance(self.views, int) and 1 <= self.views <= len(VIEWS)):
            raise ValueError(f"views must be an integer in [1, {len(VIEWS)}], got {self.views!r}")


@dataclass
class SteerStep:
    """One progress event: where the faces are now and what the classifier reads."""

    step: int
    total: int
    z: torch.Tensor  # (N, d) on the CPU
    probs: torch.Tensor  # (N, A) on the CPU
    active: torch.Tensor  # (N,) bool: faces still moving
    images: torch.Tensor  # (N, 3, 64, 64) uint8 on the CPU: G(z), already computed by the step


@dataclass
class SteerResult:
    trajectory: torch.Tensor  # (T+1, N, d) on the CPU: z₀ … z_T (for GIFs)
    probs: torch.Tensor  # (T+1, N, A) classifier probabilities along the way
    steps_taken: torch.Tensor  # (N,) steps each face moved before reaching its targets


def _without_conflict(g_keep: torch.Tensor, g_target: torch.Tensor) -> torch.Tensor:
    """Drop, per face, the part of the preservation gradient that points against the target.

    Then the step always raises the target to first order, and λ only decides how much the
    step also spends on keeping the other attributes (gradient surgery, as in PCGrad).
    """
    dot = (g_keep * g_target).sum(1, keepdim=True)
    scale = dot.clamp(max=0) / g_target.square().sum(1, keepdim=True).clamp_min(1e-20)
    return g_keep - scale * g_target


def _hold_locks(step: torch.Tensor, grads: torch.Tensor, drift: torch.Tensor, limit: float) -> torch.Tensor:
    """A step that leaves the locked logits unchanged to first order and undoes their drift so far.

    `grads` (N, k, d) are the locked logits' gradients, `drift` (N, k) how far each has moved
    from the start. The step loses its component in their span; then a least-norm move in that
    span, −Gᵀ(GGᵀ)⁻¹·drift (at most `limit` long), steps the locked logits back.
    """
    gram = grads @ grads.transpose(1, 2) + 1e-6 * torch.eye(grads.shape[1], device=grads.device)
    inside = grads.transpose(1, 2) @ torch.linalg.solve(gram, grads @ step.unsqueeze(2))  # projection onto span
    back = -(grads.transpose(1, 2) @ torch.linalg.solve(gram, drift.unsqueeze(2))).squeeze(2)
    back = back * (limit / back.norm(dim=1, keepdim=True).clamp_min(limit))
    return step - inside.squeeze(2) + back


def parse_targets(targets: dict[int, float], num_attributes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """{attribute index: weight} -> dense weight vector (A,) and target mask (A,)."""
    if not targets:
        raise ValueError("choose at least one attribute to steer")
    weights = torch.zeros(num_attributes)
    for index, weight in targets.items():
        if not 0 <= index < num_attributes:
            raise ValueError(f"attribute index {index} is out of range (0..{num_attributes - 1})")
        if not math.isfinite(weight) or weight == 0:
            raise ValueError(f"steering weight for attribute {index} must be a non-zero number")
        weights[index] = weight
    return weights, weights != 0


def steer(
    generator: nn.Module,
    classifier: nn.Module,
    z0: torch.Tensor,
    targets: dict[int, float],
    preserve: list[int] | None = None,
    config: SteerConfig | None = None,
    prior: torch.Tensor | None = None,
    hold: list[int] | None = None,
) -> Iterator[SteerStep]:
    """Generator job: yields a `SteerStep` per step, returns a `SteerResult`.

    `preserve=None` keeps all non-target attributes; pass the user's locked set to keep only those.
    `prior` (d,): the targets' global latent direction (Σ wᵢ·dᵢ of the fitted directions); with
    `config.guide` > 0 each step leans towards it, away from what only fools this one classifier.
    `hold`: attributes kept as constraints — every step has their gradients projected out, and
    drift they picked up anyway is stepped back.
    """
    config = config or SteerConfig()
    config.validate()
    device = next(generator.parameters()).device
    z0 = z0.detach().to(device, torch.float32)
    if z0.ndim == 1:
        z0 = z0.unsqueeze(0)
    if not torch.isfinite(z0).all():
        raise ValueError("the starting z contains NaN or infinite values")
    with torch.no_grad():
        image0 = generator(z0)
        logits0 = read_logits(classifier, image0, config.views)
        maps0 = normalised_maps(classifier, image0) if config.identity_weight > 0 else None
    num_attr = logits0.shape[1]
    weights, is_target = parse_targets(targets, num_attr)
    weights, is_target = weights.to(device), is_target.to(device)
    keep = torch.zeros(num_attr, dtype=torch.bool, device=device)
    if preserve is None:
        keep = ~is_target
    else:
        for j in preserve:
            if not 0 <= j < num_attr:
                raise ValueError(f"attribute index {j} is out of range (0..{num_attr - 1})")
            keep[j] = True
        keep &= ~is_target
    direction_sign = torch.sign(weights)
    prior_unit = None
    if prior is not None and config.guide > 0:
        prior_unit = (prior / prior.norm().clamp_min(1e-12)).to(device, torch.float32).reshape(1, -1)
    locks = sorted({j for j in (hold or []) if not bool(is_target[j])})
    for j in locks:
        if not 0 <= j < num_attr:
            raise ValueError(f"attribute index {j} is out of range (0..{num_attr - 1})")

    def reached(logits: torch.Tensor) -> torch.Tensor:
        if config.until is None:
            return torch.zeros(logits.shape[0], dtype=torch.bool, device=device)
        margin = math.log(config.until / (1 - config.until))  # p > until  <=>  logit > margin
        ok = (logits * direction_sign > margin) | ~is_target
        return ok.all(dim=1)

    sphere = on_sphere(generator)  # a style G's w has no prior shell to return to
    z = z0.clone()
    active = ~reached(logits0)
    steps_taken = torch.zeros(z.shape[0], dtype=torch.long)
    trajectory, probs = [z0.cpu()], [torch.sigmoid(logits0).cpu()]
    step = 0
    velocity = torch.zeros_like(z)
    while True:
        # one forward with grad per step: its logits both report the last move and drive the next
        z_var = z.detach().requires_grad_(True)
        image = generator(z_var)
        logits_var = read_logits(classifier, image, config.views)
        if step > 0:
            logits = logits_var.detach()
            active = active & ~reached(logits)
            trajectory.append(z.cpu())
            probs.append(torch.sigmoid(logits).cpu())
            yield SteerStep(step=step, total=config.steps, z=trajectory[-1], probs=probs[-1], active=active.cpu(),
                            images=to_uint8(image).cpu())
        if step == config.steps or not active.any():
            break
        lock_grads = [torch.autograd.grad(logits_var[:, j].sum(), z_var, retain_graph=True)[0] for j in locks]
        g_id = None
        if maps0 is not None:  # how the face's own features move away from the start
            (g_id,) = torch.autograd.grad(maps_distance(normalised_maps(classifier, image), maps0).sum(), z_var,
                                          retain_graph=True)
        if config.preserve_weight > 0 and keep.any():
            # d score / d logits for the target part and for the preservation part, pulled back to z
            # by two backward passes over one graph (measured faster at batch 1 on a CPU than one
            # vmapped pass with is_grads_batched, or a forward on the batch doubled)
            d_keep = -torch.sign(logits_var.detach() - logits0) * keep
            (g_target,) = torch.autograd.grad(logits_var, z_var, weights.expand_as(logits_var), retain_graph=True)
            (g_keep,) = torch.autograd.grad(logits_var, z_var, d_keep)
            if config.project_conflicts:
                g_keep = _without_conflict(g_keep, g_target)
            lam = config.preserve_weight * ((1 - step / config.steps) if config.fade_preservation else 1.0)
            grad = g_target + lam * g_keep
        else:
            (g_target,) = torch.autograd.grad(logits_var, z_var, weights.expand_as(logits_var))
            grad = g_target
        if g_id is not None:  # towards the starting face, never against the target, as strong as the target
            back = _without_conflict(-g_id, g_target)
            grad = grad + config.identity_weight * back * (
                g_target.norm(dim=1, keepdim=True) / back.norm(dim=1, keepdim=True).clamp_min(1e-12))
        grad = torch.nan_to_num(grad)
        heading = grad / grad.norm(dim=1, keepdim=True).clamp_min(1e-12)
        if prior_unit is not None:
            heading = heading + config.guide * prior_unit
            heading = heading / heading.norm(dim=1, keepdim=True).clamp_min(1e-12)
        if config.momentum > 0:  # keep going the way it was going: crosses flat or bumpy stretches
            velocity = config.momentum * velocity + heading
            heading = velocity / velocity.norm(dim=1, keepdim=True).clamp_min(1e-12)
        moved = z + heading * config.step_size
        if lock_grads:
            moved = z + _hold_locks(heading * config.step_size, torch.stack(lock_grads, 1),
                                    logits_var.detach()[:, locks] - logits0[:, locks], config.step_size)
        if config.renormalise and sphere:
            moved = renormalise(moved)
        z = torch.where(active.unsqueeze(1), moved, z).detach()
        steps_taken += active.cpu().long()
        step += 1
    return SteerResult(trajectory=torch.stack(trajectory), probs=torch.stack(probs), steps_taken=steps_taken)
