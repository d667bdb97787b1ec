"""Detectors: read a model folder and emit a typed fact sheet for the policy engine.

Entry points: `detectors.pipeline.detect_model` and the catalogue in `detectors.catalog`.
"""
