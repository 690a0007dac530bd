"""Jobs over folders of images: restore/degrade files, clean a dataset, the ablation bench, the DSST table."""
