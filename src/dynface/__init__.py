"""dynface: blind face restoration with diffusion priors (DynFaceRestore, IDM) on the CPU.

Modules, one per idea:
  degradation   synthetic degradation of METHOD §1 (paper Eq. 16/18)
  kernels       differentiable isotropic Gaussian kernels and blur
  schedule      linear-beta DDPM schedule, Tweedie (Eq. 3), ancestral/DDIM steps (Eq. 6), respacing
  networks/     UNet (guided-diffusion layout), SwinIR, SDE, DGSA
  sigma_label   the sigma* label search (Eq. 9/19)
  dblm          Dynamic Blur-Level Mapping (Eq. 8/17)
  dsst          Dynamic Starting Step lookup Table (Eq. 11/23)
  sampler       guided posterior sampling (Eq. 5, 7, 12, 15; Algorithm 1)
  pipeline      the DynFaceRestore / IDM restorers built from the above
"""
__version__ = "0.1.0"
