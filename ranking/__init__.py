"""Validator reward models that score miner replies."""
