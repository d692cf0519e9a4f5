"""Postprocessing of predicted label maps: merging part models, restoring the input grid."""
