"""The samplers by name and the options each takes; torch-free, for the config check."""

from __future__ import annotations

EDM_STOCHASTIC_OPTIONS = ("S_churn", "S_min", "S_max", "S_noise")
UNIPC_OPTIONS = ("order",)
UNIPC_ORDERS = (2, 3)
# Sampler name -> its options (keyword arguments of its solver), in registry order.
SAMPLER_OPTIONS: dict[str, tuple[str, ...]] = {
    "euler": (),
    "heun": (),
    "edm_stochastic": EDM_STOCHASTIC_OPTIONS,
    "dpmpp_2m": (),
    "unipc": UNIPC_OPTIONS,
}
SAMPLER_NAMES = tuple(SAMPLER_OPTIONS)
# Samplers that evaluate the network only at the discretization's levels (the window study's);
# edm_stochastic too, but only with S_churn = 0.
WINDOW_SAMPLERS = ("euler", "heun", "dpmpp_2m")
