"""nnU-Net 1 model folders (TotalSegmentator's Tasks 251-256): safe unpickling, plans, network.

The torch-free parts (`layout`, `unpickle`, `plans`) can be imported without torch; `network`
and `folder` import torch.
"""
