"""dynface: blind face restoration with diffusion priors (DynFaceRestore, IDM) on the CPU.

Packages, bottom to top (a module imports only from its own layer or lower ones; docs/design.md):
  core/       the maths and plumbing: kernels, schedule (Eq. 3, 6), degradation (Eq. 16/18),
              sigma_label (Eq. 9/19), dblm (Eq. 8/17), dsst (Eq. 11/23), image I/O, hardware
  networks/   UNet, SwinIR, ResUNet, SDE, DGSA, the eps model (prior and IDM) and one factory
  sampling/   guided posterior sampling (Eq. 5, 7, 12, 15; Algorithm 1)
  modelset/   a model folder's networks and manifest, checkpoint/weights I/O, official checkpoints
  pipeline    the DynFaceRestore / IDM restorer and its options
  face/, metrics/   detect-align-paste of whole photos; evaluation metrics
  training/, jobs/  training of every network; folder jobs (restore files, clean, bench, DSST table)
  cli/, web/, engines/   the `dynface` commands, the local web app, Ray
"""
__version__ = "0.1.0"

import os as _os

# OpenMP threads that spin while waiting (the default "active" policy) turn a 2-thread restore on a
# busy 2-core machine into minutes: measured 55-267 s against 12-18 s with "passive" (docs/speed).
# Set before torch starts its thread pool; a value the user exported wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
