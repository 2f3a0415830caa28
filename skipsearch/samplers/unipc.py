"""UniPC-bh2 in EDM's sigma form (Zhao et al. 2023, data prediction, multistep).

With alpha = 1 and lambda = -log(sigma), a step from sigma_s to sigma_t (h = lambda_t -
lambda_s) with the data predictions m_0 = D(x_s; sigma_s) and earlier m_k is

    x_t = (sigma_t / sigma_s) x_s - phi_1 m_0 - B(h) sum_k a_k D_k / r_k,
    phi_1 = e^{-h} - 1,  B(h) = e^{-h} - 1 (the bh2 variant),
    r_k = (lambda_k - lambda_s) / h,  D_k = m_k - m_0.

The predictor UniP-p uses the p - 1 earlier outputs; the corrector UniC-p adds the model
output m_t at the predicted x_t (r = 1), which the next step evaluates anyway, so the
corrector costs no network evaluation: N steps take N evaluations. The coefficients a solve
R_p a = g_p / B(h) with R_p[j, k] = r_k^j and g_p from the phi functions of -h (Zhao et al.
2023, Theorems 3.1 and 3.3); as the authors' code does, UniP-2 takes a = 1/2 and UniC-1 takes
a = 1/2. The order warms up (step i uses at most i + 1 outputs) and goes down at the end
(at most N - i), so the last step, to sigma = 0, is x = D(x; sigma) as in DPM-Solver++.
"""

from __future__ import annotations

import math

import torch

from .base import Denoise, Noise, Step, StepCallback
from .names import UNIPC_ORDERS


def unipc_nfe(steps: int) -> int:
    """Network evaluations of UniPC with N steps: N (the corrector reuses the next call)."""
    return steps


def step_order(order: int, i: int, steps: int) -> int:
    """The order of step i: warm-up from 1, at most ``order``, and down to 1 at the last step."""
    return min(order, i + 1, steps - i)


def bh2_coefficients(h: float, r: list[float]) -> tuple[float, float, torch.Tensor,
                                                         torch.Tensor]:
    """phi_1, B(h), R (rows r_k^j) and g / B(h) for ratios ``r`` (last one 1), float64."""
    hh = -h  # data prediction integrates in -lambda
    phi_1 = math.expm1(hh)
    B_h = math.expm1(hh)
    p = len(r)
    R = torch.tensor([[rk**j for rk in r] for j in range(p)], dtype=torch.float64)
    # g_j = j! phi_{j+1}(hh) h^-j terms by the recursion phi_{k+1} = (phi_k - 1/k!) / hh.
    g, factorial, b = phi_1 / hh - 1, 1, []
    for j in range(1, p + 1):
        b.append(g * factorial / B_h)
        factorial *= j + 1
        g = g / hh - 1 / factorial
    return phi_1, B_h, R, torch.tensor(b, dtype=torch.float64)


def uni_update(x_s: torch.Tensor, sigma_s: float, sigma_t: float,
               outputs: list[tuple[float, torch.Tensor]], order: int,
               m_t: torch.Tensor | None = None) -> torch.Tensor:
    """UniP-p (``m_t`` None) or UniC-p (``m_t`` = D at the predicted x_t) from s to t.

    ``outputs`` holds (sigma, D) of the earlier evaluations, newest (at sigma_s) last.
    """
    lam_s = -math.log(sigma_s)
    h = -math.log(sigma_t) - lam_s
    m_0 = outputs[-1][1]
    earlier = outputs[-order:-1][::-1]  # m_1 .. m_{p-1}, going back in time
    r = [(-math.log(sigma_k) - lam_s) / h for sigma_k, _ in earlier]
    phi_1, B_h, R, b = bh2_coefficients(h, [*r, 1.0])
    D = [(m_k - m_0) / r_k for (_, m_k), r_k in zip(earlier, r, strict=True)]
    if m_t is None:
        # UniP-p: the p - 1 earlier outputs.
        a = [0.5] if order == 2 else torch.linalg.solve(R[:-1, :-1], b[:-1]).tolist()
    else:
        # UniC-p: the earlier outputs and m_t (r = 1).
        a = [0.5] if order == 1 else torch.linalg.solve(R, b).tolist()
        D.append(m_t - m_0)
    x_t = (sigma_t / sigma_s) * x_s - phi_1 * m_0
    for a_k, D_k in zip(a, D, strict=False):
        x_t = x_t - B_h * a_k * D_k
    return x_t


@torch.no_grad()
def sample_unipc(denoise: Denoise, x_T: torch.Tensor, sigmas: torch.Tensor,
                 noise: Noise | None = None, order: float = 2, *,
                 callback: StepCallback | None = None, **options: float) -> torch.Tensor:
    """UniPC-bh2 of ``order`` 2 or 3 with the UniC corrector (Zhao et al. 2023, Alg. 1)."""
    if options:
        raise TypeError(f"unipc takes only order, got {', '.join(sorted(options))}")
    if order not in UNIPC_ORDERS:
        raise ValueError(f"unipc order must be one of {UNIPC_ORDERS}, got {order}")
    order, steps = int(order), len(sigmas) - 1
    levels = [float(s) for s in sigmas]
    x_cur = x_T  # the caller picks the dtype (float64 or float32)
    outputs: list[tuple[float, torch.Tensor]] = []
    x_prev, p_prev = None, 0
    for i in range(steps):
        t_cur, t_next = levels[i], levels[i + 1]
        m_cur = denoise(x_cur, sigmas[i])
        if t_next == 0:
            # Final step to sigma = 0 (h = inf): first order, x = D(x; sigma), which the
            # corrected x would not change.
            if callback is not None:
                callback(Step(i, sigmas[i], sigmas[i + 1], x_cur, m_cur, m_cur))
            return m_cur
        if x_prev is not None:
            # UniC: correct x_cur with the output at it; the output itself is kept.
            x_cur = uni_update(x_prev, levels[i - 1], t_cur, outputs, p_prev, m_cur)
        outputs = [*outputs[-(order - 1):], (t_cur, m_cur)]
        p = step_order(order, i, steps)
        # UniP: predict x at t_next from the p newest outputs.
        x_prev, p_prev = x_cur, p
        x_cur = uni_update(x_cur, t_cur, t_next, outputs, p)
        if callback is not None:
            callback(Step(i, sigmas[i], sigmas[i + 1], x_prev, x_cur, m_cur))
    return x_cur
