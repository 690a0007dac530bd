"""The maths and plumbing every layer stands on: kernels, DDPM schedule, degradation, the sigma*
label, DBLM, the DSST table, image I/O and metrics, hardware, atomic writes (no network, no model set)."""
