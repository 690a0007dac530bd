"""A tiny random-weight model set (32^2) for fast pipeline tests: real networks, untrained."""
from pathlib import Path

import torch

from conftest import smooth_image
from dynface.core.dsst import DSST
from dynface.core.sigma_label import sigma_grid
from dynface.modelset.assemble import assemble
from dynface.modelset.checkpoint import export_safetensors
from dynface.networks.factory import build_network

SIZE = 32
ARCH = {
    "prior": {"coord_channels": True, "unet": {"image_size": SIZE, "in_channels": 5, "model_channels": 32,
                                               "out_channels": 3, "channel_mult": [1, 2], "num_res_blocks": 1,
                                               "attention_resolutions": [16], "num_head_channels": 32}},
    "rm": {"type": "resunet", "channels": [8, 16], "blocks": 1},
    "tm": {"type": "resunet", "channels": [8, 16], "blocks": 1},
    "sde": {"sigma_min": 0.1, "sigma_max": 3.0, "width": 8},
    "dgsa": {"width": 8, "temb": 16},
    # IDM with the x0-residual output: its zero-initialised output layer means "return the condition"
    "idm": {"coord_channels": True, "cond_channels": 3, "prediction": "x0_residual",
            "unet": {"image_size": SIZE, "in_channels": 8, "model_channels": 32, "out_channels": 3,
                     "channel_mult": [1, 2], "num_res_blocks": 1, "attention_resolutions": [16],
                     "num_head_channels": 32}},
}


def make_tiny_modelset(root: Path, seed: int = 0, dgsa_identity: bool = False, defaults: dict | None = None) -> Path:
    """A random tiny model set in `root`; `defaults` overrides entries of its manifest's sampler defaults."""
    torch.manual_seed(seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    sources = {}
    for kind, arch in ARCH.items():
        net = build_network(kind, arch)
        with torch.no_grad():
            if kind == "prior":  # the zero-initialised output conv would make eps = 0: give it weights
                torch.nn.init.normal_(net.unet.out[2].weight, std=0.02)
            if kind in ("rm", "tm"):
                torch.nn.init.normal_(net.tail.weight, std=0.02)
            if kind == "sde":  # sigma_hat around 1.5 (the middle of the grid), varying a little per image
                torch.nn.init.normal_(net.head[-1].weight, std=0.05)
                net.head[-1].bias.fill_(0.5)
            if kind == "dgsa":
                if dgsa_identity:
                    net.conv3.weight.zero_()
                    net.conv3.bias.fill_(1.0)
                else:
                    torch.nn.init.normal_(net.conv3.weight, std=0.3)
                    net.conv3.bias.fill_(0.5)
        sources[kind] = export_safetensors(net, root / f"src_{kind}.safetensors", kind, arch,
                                           {"iters": 0, "wall_time_s": 0, "data": "random"}, dtype=torch.float32)
    grid = sigma_grid(0.1, 3.0, 30)
    imgs = torch.cat([smooth_image(SIZE, seed=i) for i in range(4)])
    d = DSST.build(imgs, grid, tau=0.002)
    sources["dsst"] = d.save(root / "src_dsst.json")
    assemble(sources, root, SIZE, "utkface", [0.1, 3.0, 30], {}, {"zeta": 0.5, "sigma_lr": 0.01, "steps": 4,
                                                                  "n_guidance": 3, "guidance_spacing": 0.3,
                                                                  "dm_sigma": 1.0, **(defaults or {})},
             note="tiny random test set")
    for p in root.glob("src_*"):
        p.unlink()
    return root
