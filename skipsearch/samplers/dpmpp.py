"""DPM-Solver++(2M) in EDM's sigma form (Lu et al. 2022, multistep, data prediction)."""

from __future__ import annotations

import torch

from .base import Denoise, Noise, Step, StepCallback, reject_options


def dpmpp_2m_nfe(steps: int) -> int:
    """Network evaluations of DPM-Solver++(2M) with N steps: N (one per step)."""
    return steps


@torch.no_grad()
def sample_dpmpp_2m(denoise: Denoise, x_T: torch.Tensor, sigmas: torch.Tensor,
                    noise: Noise | None = None, *, callback: StepCallback | None = None,
                    **options: float) -> torch.Tensor:
    """DPM-Solver++(2M) with lambda = -log(sigma) (Lu et al. 2022, Algorithm 2)."""
    reject_options("dpmpp_2m", options)
    x_next = x_T  # the caller picks the dtype (float64 or float32)
    x0_prev, h_prev = None, None
    for i in range(len(sigmas) - 1):
        t_cur, t_next = sigmas[i], sigmas[i + 1]
        x_cur = x_next
        x0_cur = denoise(x_cur, t_cur)
        if t_next == 0:
            # Final step to sigma = 0 (h = inf): first order, x = D(x; sigma).
            x_next = x0_cur
            if callback is not None:
                callback(Step(i, t_cur, t_next, x_cur, x_next, x0_cur))
            continue
        h = t_cur.log() - t_next.log()  # lambda_next - lambda_cur
        # Multistep 2nd order data estimate D_i; the first step is first order.
        D = x0_cur
        if x0_prev is not None:
            r = h_prev / h
            D = (1 + 1 / (2 * r)) * x0_cur - 1 / (2 * r) * x0_prev
        # Update x_next = (sigma_next / sigma_cur) x_cur - (e^{-h} - 1) D.
        x_next = (t_next / t_cur) * x_cur - torch.expm1(-h) * D
        x0_prev, h_prev = x0_cur, h
        if callback is not None:
            callback(Step(i, t_cur, t_next, x_cur, x_next, x0_cur))
    return x_next
