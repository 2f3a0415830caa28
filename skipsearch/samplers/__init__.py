"""Samplers in EDM's sigma form, their discretizations and NFE accounting.

Every sampler is ``sample_X(denoise, x_T, sigmas, noise=None, **options)
-> x_0``: ``denoise`` is D(x; sigma) in x_T's dtype, ``x_T`` the start (latents times
sigmas[0]), ``sigmas`` float64 on the host ending with 0 (steps branch on them without waiting
for the device), ``noise(like)`` standard normal per image (only stochastic samplers use it).

The public names are imported on first use: ``samplers.names`` (the samplers and options the
config check reads) comes without torch.
"""

from __future__ import annotations

from ..lazy import lazy_exports

_MODULES = {
    "skipsearch.samplers.names": ("SAMPLER_NAMES", "SAMPLER_OPTIONS"),
    "skipsearch.samplers.discretization": ("edm_sigmas", "sigmas_from_list"),
    "skipsearch.samplers.dpmpp": ("dpmpp_2m_nfe", "sample_dpmpp_2m"),
    "skipsearch.samplers.edm_stochastic": ("edm_stochastic_nfe", "sample_edm_stochastic"),
    "skipsearch.samplers.euler": ("euler_nfe", "sample_euler"),
    "skipsearch.samplers.heun": ("heun_nfe", "sample_heun"),
    "skipsearch.samplers.seeds": ("PerImageNoise", "labels_from_seeds", "latents_from_seeds"),
    "skipsearch.samplers.unipc": ("sample_unipc", "unipc_nfe"),
    "skipsearch.samplers.base": ("Denoise", "Noise", "Step", "StepCallback"),
    "skipsearch.samplers.registry": ("SAMPLERS", "SamplerDef", "nfe_of", "sampler_def"),
    "skipsearch.samplers.spec": ("SamplerSpec",),
}
_EXPORTS = {name: module for module, names in _MODULES.items() for name in names}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
