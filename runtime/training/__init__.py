"""Distributed training on Ray Train: the built-in risk-model loop and the launcher."""
