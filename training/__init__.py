"""Training BN and SkipInit Wide-ResNets with the papers' recipe (`skipfold train`)."""
