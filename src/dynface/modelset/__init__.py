"""Model sets: the networks of one folder with their manifest, checkpoint and weight file I/O,
the official public checkpoints, and the checks run on a stranger's files before anything is built."""
