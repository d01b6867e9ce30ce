"""What a network is: the spec, the one block walk, parameter and MAC counts, scaling rules, presets."""
