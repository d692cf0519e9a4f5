"""Inference: sliding-window prediction, devices, loaded models, nnU-Net case pre/post-processing.

Submodules import torch (except `nnunet`, which is pure numpy); import them explicitly.
"""
