"""Measurements: size, latency, fidelity. Each takes artifacts and inputs, never builds them."""
