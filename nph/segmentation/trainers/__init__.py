"""nnU-Net trainers defined in nph, found by name through ``nnUNet_extTrainer`` (never edits the installed package)."""
