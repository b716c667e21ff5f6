"""Empirical disclosure testing: linkage (mosaic), singling out, linkability, inference, membership."""
