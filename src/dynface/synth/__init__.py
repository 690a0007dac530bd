"""Synthetic faces: MobileStyleGAN (FFHQ, 1024^2) read with the OpenVINO runtime (`generator`)."""
