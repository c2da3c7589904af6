"""The bottom layer: helpers every part shares, with no torch and nothing from above."""
