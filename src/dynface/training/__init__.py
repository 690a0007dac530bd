"""Resumable training of every network: the loop, one loss per stage, batches, data, curves, torchrun."""
