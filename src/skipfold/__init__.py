"""skipfold: train, fold and serve BatchNorm and SkipInit Wide-ResNets.

One import name for the whole project. Bottom to top, each layer imports only those below it:
`skipfold.common` (atomic files, images, command-line arguments) and `skipfold.formats` (the
model repository and the model card that export writes and serving reads); the stages
`skipfold.models`, `skipfold.training`, `skipfold.export`; `skipfold.service` (serving, no
torch) and `skipfold.bench`; at the top the `skipfold` command (`skipfold.cli`) and the demo.
"""

__version__ = "0.2.0"
