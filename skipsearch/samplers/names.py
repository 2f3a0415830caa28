"""The samplers by name and the options each takes; torch-free, for the config check."""

from __future__ import annotations

EDM_STOCHASTIC_OPTIONS = ("S_churn", "S_min", "S_max", "S_noise")
UNIPC_OPTIONS = ("order",)
UNIPC_ORDERS = (2, 3)
# Options that may be infinite: EDM's S_max = inf churns at every level.
UNBOUNDED_OPTIONS = ("S_max",)
# Sampler name -> its options (keyword arguments of its solver), in registry order.
SAMPLER_OPTIONS: dict[str, tuple[str, ...]] = {
    "euler": (),
    "heun": (),
    "edm_stochastic": EDM_STOCHASTIC_OPTIONS,
    "dpmpp_2m": (),
    "unipc": UNIPC_OPTIONS,
}
SAMPLER_NAMES = tuple(SAMPLER_OPTIONS)
# The most steps a sampler may take: a DDPM's whole training schedule (1000 levels); beyond it
# an ODE solver gains nothing measurable and a trial would run for days.
MAX_STEPS = 1000
# Samplers that evaluate the network only at the discretization's levels (the window study's);
# edm_stochastic too, but only with S_churn = 0.
WINDOW_SAMPLERS = ("euler", "heun", "dpmpp_2m")
# The largest noise level a discretization may name: far above any published network's
# sigma_max (80 for EDM, about 1350 for the VE SDE at 1024 px), and small enough that
# sigma**2 stays finite in float32.
SIGMA_LIMIT = 1e5
