"""Model builders: spec + validated tables -> ``pm.Model``. Builders build graphs, nothing else."""
