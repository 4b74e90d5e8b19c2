"""Pure analysis over recorded traces and sweep results: one module per concern, each with a figure."""
