"""Readers of the official annotation files (HACS, Kinetics-700, UCF-101), the shared clip dataset,
and the synthetic action generator."""
