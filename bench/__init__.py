"""`skipfold bench`: BN-folded vs SkipInit latency, in-process and over HTTP. Torch is optional."""
