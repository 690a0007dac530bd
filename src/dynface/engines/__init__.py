"""Engines that spread dynface jobs over several processes or machines (optional extras)."""
