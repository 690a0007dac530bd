"""The training loss of each stage (docs/method.md §2-§6), one function per kind, in `LOSSES`."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from dynface.core.schedule import v_target
from dynface.training.batches import Ctx, crop_patch, crop_scaled, degrade_batch, pick_patch


def min_snr_weights(schedule, t: torch.Tensor, gamma: float, prediction: str = "eps") -> torch.Tensor:
    """Min-SNR-gamma loss weights (Hang et al. 2023), SNR_t = abar_t / (1 - abar_t): on an eps-MSE
    min(SNR_t, gamma) / SNR_t, on a v-MSE min(SNR_t, gamma) / (SNR_t + 1) -- the same objective,
    since |v_hat - v|^2 = |eps_hat - eps|^2 (SNR_t + 1) / SNR_t. Caps the weight of the nearly clean
    steps, whose eps targets are noise the network cannot predict, so the steps that shape the face
    get the gradient."""
    abar = schedule.abar(t).double()
    snr = abar / (1 - abar)
    return (snr.clamp(max=gamma) / (snr + 1 if prediction == "v" else snr)).float()


def loss_prior(model, ctx: Ctx) -> torch.Tensor:
    """DDPM eps-MSE on random patches with coordinate channels (Patch Diffusion); a v model
    (`arch: {prediction: v}`) regresses its own output on v_target instead. With
    `min_snr_gamma: G` each sample's MSE is weighted by min_snr_weights."""
    p, b = pick_patch(ctx)
    (x,), coords = crop_patch(ctx, p, ctx.batcher(b, min_side=p))
    t = torch.randint(0, ctx.schedule.num_steps, (b,))
    noise = torch.randn_like(x)
    gamma = ctx.cfg.min_snr_gamma
    w = min_snr_weights(ctx.schedule, t, float(gamma), model.prediction) if gamma else None
    target = v_target(x, noise, ctx.schedule.abar(t)) if model.prediction == "v" else noise
    x_t, t, target, coords = ctx.on_device(ctx.schedule.q_sample(x, t, noise), t, target, coords)
    out = model.unet_output(x_t, t, coords=coords)  # eps or v, as the network predicts
    if w is None:
        return F.mse_loss(out.float(), target)
    per_sample = (out.float() - target).pow(2).flatten(1).mean(1)
    return (w.to(per_sample.device) * per_sample).mean()


def loss_idm(model, ctx: Ctx) -> torch.Tensor:
    """IDM / SR3: the degraded face (whole-image degradation, then the same patch window) is
    concatenated to x_t. eps models: eps-MSE; x0_residual models: MSE of x0_hat to the clean face."""
    p, b = pick_patch(ctx)
    x = ctx.batcher(b)
    y = degrade_batch(x, ctx.cfg, ctx.step)
    (x, y), coords = crop_patch(ctx, p, x, y)
    t = torch.randint(0, ctx.schedule.num_steps, (b,))
    noise = torch.randn_like(x)
    x_t = ctx.schedule.q_sample(x, t, noise)
    x, y, x_t, t, noise, coords = ctx.on_device(x, y, x_t, t, noise, coords)
    if model.prediction == "x0_residual":
        return F.mse_loss(model.predict_x0(x_t, t, cond=y, coords=coords), x)
    eps, _ = model(x_t, t, cond=y, coords=coords)
    return F.mse_loss(eps.float(), noise)


def fft_loss(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """L1 between the 2-D spectra (real and imaginary parts, orthonormal FFT): unlike pixel L1 it
    weighs every frequency alike, so the fine detail that L1 averages away costs as much as the
    coarse shape (a frequency-domain loss in the spirit of focal frequency loss, without its focus)."""
    fo, fx = torch.fft.rfft2(out.float(), norm="ortho"), torch.fft.rfft2(x.float(), norm="ortho")
    return (torch.view_as_real(fo) - torch.view_as_real(fx)).abs().mean()


def loss_rm(model, ctx: Ctx) -> torch.Tensor:
    """Restorer RM: L1 to the clean face, plus what the config adds (`restoration_loss`).
    `crop: p` trains on one random p x p window per batch, cut after the whole-face degradation."""
    cfg = ctx.cfg
    x = ctx.batcher(cfg.batch)
    y = degrade_batch(x, cfg, ctx.step)
    if cfg.crop:
        (x, y), _ = crop_patch(ctx, cfg.crop, x, y)
    x, y = ctx.on_device(x, y)
    return restoration_loss(model(y).float(), x, ctx)


def upsampler_input(x: torch.Tensor, scale: int, blur: list | None, draw) -> torch.Tensor:
    """What the face upsampler sees in training: the face shrunk by `scale` (antialiased bicubic) and,
    with `blur: [lo, hi]`, blurred by a Gaussian of sigma ~ U[lo, hi] input px per image (`draw()`
    gives the uniforms), as soft as a restored face can be."""
    from dynface.core.imageio import resize
    from dynface.core.kernels import gaussian_blur

    y = resize(x, (x.shape[-2] // scale, x.shape[-1] // scale))
    if blur:
        lo, hi = float(blur[0]), float(blur[1])
        sig = torch.tensor([lo + (hi - lo) * draw() for _ in range(len(y))])
        sharp = sig < 0.1  # below a tenth of a pixel a Gaussian is the identity
        if not sharp.all():
            y = torch.where(sharp[:, None, None, None], y, gaussian_blur(y, sig.clamp(min=0.1)))
    return y.clamp(-1, 1)


def restored_input(x: torch.Tensor, scale: int, restorer, cfg, step: int) -> torch.Tensor:
    """The upsampler's input as the full method gives it: the face shrunk by `scale`
    (`upsampler_input`), degraded as the restorer was trained for (`degradation:`, seeds from the
    step as `degrade_batch`) and restored by the frozen `restorer` (the RM, on its own device), so
    the upsampler learns to sharpen restored faces."""
    y = degrade_batch(upsampler_input(x, scale, None, None), cfg, step)
    with torch.no_grad():
        return restorer(y.to(next(restorer.parameters()).device)).float().cpu().clamp(-1, 1)


def loss_up(model, ctx: Ctx) -> torch.Tensor:
    """Face upsampler: a random `crop` window of the sharp face (at the output size) is the target,
    its `upsampler_input` the input -- or, with a frozen `rm`, the same window of the degraded face
    restored by it (`restored_input`, whole face first); the loss is the RM's (`restoration_loss`)."""
    cfg = ctx.cfg
    x = ctx.batcher(cfg.batch)
    if "rm" in ctx.frozen:
        y = restored_input(x, model.scale, ctx.frozen["rm"], cfg, ctx.step)
        if cfg.crop:
            x, y = crop_scaled(ctx, cfg.crop, x, y)
    else:
        if cfg.crop:
            (x,), _ = crop_patch(ctx, cfg.crop, x)
        y = upsampler_input(x, model.scale, cfg.input_blur, ctx.batcher.rand)
    x, y = ctx.on_device(x, y)
    return restoration_loss(model(y).float(), x, ctx)


def restoration_loss(out: torch.Tensor, x: torch.Tensor, ctx: Ctx) -> torch.Tensor:
    """L1 to the clean face plus what the config adds (each ablated in docs/history/training-log.md):
    `fft_weight` x fft_loss, `feature_weight` x Inception feature loss (training/feature_loss.py), and
    with `gan:` the PatchGAN generator loss (training/adversarial.py; the critic steps here too)."""
    cfg = ctx.cfg
    loss = F.l1_loss(out, x)
    if w := cfg.fft_weight:
        loss = loss + w * fft_loss(out, x)
    if w := cfg.feature_weight:
        from dynface.training.feature_loss import inception_feature_loss

        loss = loss + w * inception_feature_loss(out, x)
    adv = ctx.adversary
    if adv is not None and ctx.step >= adv.start:
        adv.critic_step(x, out)
        loss = loss + adv.weight * adv.generator_loss(out)
    return loss


def loss_se(model, ctx: Ctx) -> torch.Tensor:
    """Standard Estimation. Stage 1 (Eq. 20-21): SDE alone on true Gaussian blurs.
    Stage 2 (Eq. 10/22): || TM(y) - k_sigma* x ||_1 + lambda || SDE(TM(y))/smax - sigma*/smax ||_1."""
    from dynface.core.kernels import gaussian_blur
    from dynface.core.sigma_label import sigma_grid, sigma_star

    cfg = ctx.cfg
    smin, smax, n = cfg.sigma_grid
    x = ctx.batcher(cfg.batch)
    sde, tm = model["sde"], model["tm"]
    if ctx.step < cfg.stage1_iters:
        sig = smin + (smax - smin) * torch.rand(x.shape[0])
        x, sig = ctx.on_device(x, sig)
        return F.l1_loss(sde.normalized(gaussian_blur(x, sig)).float(), sig / smax)
    y = degrade_batch(x, cfg, ctx.step)
    x, y = ctx.on_device(x, y)
    with torch.no_grad():
        r = ctx.frozen["rm"](y).float()
        s_star = sigma_star(x, r, sigma_grid(smin, smax, n), cfg.eps)
        target = gaussian_blur(x, s_star)
    out = tm(y)
    loss = F.l1_loss(out.float(), target)
    return loss + cfg.lambda_ * F.l1_loss(sde.normalized(out).float(), s_star / smax)


def loss_dgsa(model, ctx: Ctx) -> torch.Tensor:
    """DGSA (docs/method.md §6): one guided step with M_t, then SWT-L1 + perceptual on x0_hat(x_{t-1})."""
    from dynface.training.dgsa_loss import dgsa_loss

    return dgsa_loss(model, ctx)


LOSSES = {"prior": loss_prior, "idm": loss_idm, "rm": loss_rm, "se": loss_se, "dgsa": loss_dgsa, "up": loss_up}
