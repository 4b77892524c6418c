"""The ``nph`` command: a thin Hydra layer that turns ``key=value`` overrides into library calls."""
