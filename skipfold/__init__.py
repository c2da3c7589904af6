"""skipfold: train, fold and serve BatchNorm and SkipInit Wide-ResNets.

This package holds only what every part shares without importing torch: the version and the
`skipfold` command's dispatcher. The work lives in `models`, `training`, `export` and `service`.
"""

__version__ = "0.1.0"
