"""Samplers against an analytic denoiser: Gaussian data, whose exact noise prediction and ODE solution are known.

Data x0 ~ N(mu, s²) per element. Under x_t = a·x0 + b·noise the marginal is N(a·mu, a²s² + b²), the exact
posterior mean is E[x0 | x_t] = mu + a·s²·(x_t − a·mu) / (a²s² + b²), and the probability-flow ODE keeps the
z-score (x_t − a·mu) / sqrt(a²s² + b²) fixed, so its exact end point from x_T is mu + s·z_T.
"""

from __future__ import annotations

import math

import pytest
import torch
from monai.networks.schedulers import RFlowScheduler

from nph.errors import InputError
from nph.models.noise import build_scheduler
from nph.sampling.diffusion import initial_noise, sample_latents
from nph.sampling.dpm_solver import DPMSolverMultistepScheduler, FlowDPMSolverScheduler

SHAPE = (2, 4, 4, 4)
MU = torch.linspace(-1.0, 1.0, math.prod(SHAPE), dtype=torch.float64).reshape(SHAPE).float()
SD = torch.linspace(0.05, 1.5, math.prod(SHAPE), dtype=torch.float64).flip(0).reshape(SHAPE).float()
DDPM = {"kind": "ddpm", "num_train_timesteps": 1000}


def _flow(scheduler) -> bool:
    return isinstance(scheduler, (RFlowScheduler, FlowDPMSolverScheduler))


def _ab(scheduler, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(a, b) of x_t = a·x0 + b·noise at timesteps ``t`` (B,), shaped to broadcast over (B, C, X, Y, Z)."""
    if _flow(scheduler):  # rectified flow: x_t = (1 − s)·x0 + s·noise
        s = (t.double() / scheduler.num_train_timesteps)[:, None, None, None, None]
        return 1 - s, s
    cumprod = scheduler.alphas_cumprod.double()[t.long()][:, None, None, None, None]
    return cumprod.sqrt(), (1 - cumprod).sqrt()


def analytic_denoiser(scheduler, prediction: str):
    """The exact model output (epsilon, v or rectified-flow velocity) for Gaussian data N(MU, SD²)."""

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a, b = _ab(scheduler, t)
        x, mu, var = x.double(), MU.double(), SD.double() ** 2
        clean = mu + a * var * (x - a * mu) / (a**2 * var + b**2)
        noise = (x - a * clean) / b
        out = {"epsilon": noise, "v_prediction": a * noise - b * clean, "rflow": clean - noise}[prediction]
        return out.float()

    return denoise


def exact_ode_end(scheduler, x_start: torch.Tensor) -> torch.Tensor:
    """The exact sampler's result from ``x_start`` at the scheduler's first timestep.

    Rectified flow: the ODE's end point at s = 0. DDPM-trained models: the ODE's point at t = 0 (σ > 0), then
    the final jump to clean data that DDIM and DPM-Solver++ make, i.e. the posterior mean there.
    """
    mu, var = MU.double(), SD.double() ** 2
    a, b = _ab(scheduler, scheduler.timesteps[:1].expand(x_start.shape[0]))
    z = (x_start.double() - a * mu) / (a**2 * var + b**2).sqrt()
    if _flow(scheduler):
        return (mu + var.sqrt() * z).float()
    a, b = _ab(scheduler, torch.zeros(x_start.shape[0]))
    x_end = a * mu + (a**2 * var + b**2).sqrt() * z
    return (mu + a * var * (x_end - a * mu) / (a**2 * var + b**2)).float()


def _run(noise: dict, prediction: str, sampler: str, steps: int, n: int = 4) -> tuple[float, torch.Tensor]:
    """Max |sample − exact ODE end point| over ``n`` samples, and the samples."""
    scheduler = build_scheduler({**noise, "prediction": prediction if prediction != "rflow" else "epsilon"}, sampler)
    generators = [torch.Generator().manual_seed(i) for i in range(n)]
    x = initial_noise(SHAPE, generators, torch.device("cpu"))
    out = sample_latents(analytic_denoiser(scheduler, prediction), scheduler, x, steps, generators)
    return float((out - exact_ode_end(scheduler, x)).abs().max()), out


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_dpm_solver_converges_to_the_exact_ode_solution(prediction):
    errors = {steps: _run(DDPM, prediction, "dpmpp_2m", steps)[0] for steps in (10, 20, 100)}
    # measured (epsilon and v alike): 0.091 at 10 steps, 0.031 at 20, 0.0014 at 100: second order
    assert errors[100] < 0.005 and errors[20] < 0.05 and errors[10] < 0.15, errors
    assert errors[20] / errors[100] > 10.0, errors  # 5× the steps cut the error ≈ 25×


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("steps", [10, 15, 20])
def test_dpm_solver_beats_ddim_at_the_same_steps(prediction, steps):
    dpm, _ = _run(DDPM, prediction, "dpmpp_2m", steps)
    ddim, _ = _run(DDPM, prediction, "ddim", steps)
    assert dpm < 0.25 * ddim, (dpm, ddim)  # measured: DDIM's error (0.54, 0.40, 0.30) is 6–10× DPM-Solver++'s


def test_samples_follow_the_data_distribution():
    _, out = _run(DDPM, "epsilon", "dpmpp_2m", 20, n=64)
    z = ((out - MU) / SD).flatten()  # 64 samples × 128 elements, each N(0, 1) if the distribution is right
    assert abs(float(z.mean())) < 0.05 and 0.95 < float(z.std()) < 1.05, (float(z.mean()), float(z.std()))


def test_rectified_flow_few_steps_against_the_exact_ode_solution():
    errors = {steps: _run({"kind": "rflow"}, "rflow", "rflow", steps)[0] for steps in (5, 10, 20, 40)}
    assert errors[40] < errors[20] < errors[10] < errors[5], errors
    assert 1.5 < errors[10] / errors[20] < 2.5, errors  # Euler: first order


def test_dpm_solver_on_rectified_flow_is_a_few_step_sampler():
    errors = {steps: _run({"kind": "rflow"}, "rflow", "dpmpp_2m", steps)[0] for steps in (10, 20, 40)}
    euler = {steps: _run({"kind": "rflow"}, "rflow", "rflow", steps)[0] for steps in (10, 20)}
    # measured: 0.087, 0.035, 0.008 (second order) against Euler's 0.40 and 0.21
    assert errors[10] < 0.3 * euler[10] and errors[20] < 0.3 * euler[20], (errors, euler)
    assert errors[40] < 0.015 and errors[20] / errors[40] > 3.0, errors


def test_dpm_solver_refuses_out_of_order_steps_and_bad_settings():
    scheduler = DPMSolverMultistepScheduler(1000, "scaled_linear_beta", beta_start=0.0015, beta_end=0.0205)
    scheduler.set_timesteps(5)
    x = torch.zeros(1, 1, 2, 2, 2)
    with pytest.raises(RuntimeError, match="expected the timesteps of set_timesteps in order"):
        scheduler.step(x, int(scheduler.timesteps[1]), x)
    with pytest.raises(ValueError, match=r"expected 1\.\.1000"):
        scheduler.set_timesteps(0)
    with pytest.raises(ValueError, match="prediction_type=sample"):
        DPMSolverMultistepScheduler(prediction_type="sample")
    with pytest.raises(InputError, match="trained with rectified flow; use sampler=rflow or dpmpp_2m"):
        build_scheduler({"kind": "rflow"}, "ddim")


def test_dpm_solver_with_one_step_is_the_clean_prediction():
    scheduler = build_scheduler({**DDPM, "prediction": "epsilon"}, "dpmpp_2m")
    scheduler.set_timesteps(1)
    x, eps = torch.randn(1, 1, 2, 2, 2), torch.randn(1, 1, 2, 2, 2)
    cumprod = float(scheduler.alphas_cumprod[999])
    out, clean = scheduler.step(eps, 999, x)
    torch.testing.assert_close(out, (x - math.sqrt(1 - cumprod) * eps) / math.sqrt(cumprod))
    assert out is clean
