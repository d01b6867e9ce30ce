"""Scaling strategies (RBIS, compound, fast, ResNet-RS) and accuracy evaluators."""
