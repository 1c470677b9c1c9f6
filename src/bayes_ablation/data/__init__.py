"""Data layer: reading, validating, simulating, cutting and aggregating trial tables."""
