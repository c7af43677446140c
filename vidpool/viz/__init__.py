"""Visualizations: spatio-temporal downsampling by pooling methods (pooling.py)."""
