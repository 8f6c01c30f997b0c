"""Domain package of the Router One video bridge, shipped to Lambda as a layer."""
