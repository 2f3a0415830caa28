"""The model kinds the ``model`` config group may name; torch-free, for the config check."""

from __future__ import annotations

# One per loader of models.loading.LOADERS, in its order.
MODEL_KINDS = ("digits", "edm", "edm2", "diffusers_unet2d", "stable_diffusion", "sdxl", "adm",
               "ldm", "uvit")
# Kinds that make RGB images from prompts: no FID feature network for them yet.
TEXT_TO_IMAGE_KINDS = ("stable_diffusion", "sdxl")
# Kinds with a guidance weight: classifier-free (LDM and U-ViT with model.null_class; ADM has
# none) or EDM2's autoguidance (with model.guide_path).
GUIDED_KINDS = (*TEXT_TO_IMAGE_KINDS, "ldm", "uvit", "edm2")
