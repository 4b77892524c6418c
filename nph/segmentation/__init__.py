"""Segmentation stage: nnU-Net v2 export/plan/train/predict, the SynthSeg runner, the SynthSeg-style randomiser."""
