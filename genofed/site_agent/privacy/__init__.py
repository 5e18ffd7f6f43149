"""Differential privacy at the site: noise calibration, accounting, secure noise."""
