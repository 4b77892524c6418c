"""Network factories (plain MONAI modules) and model bundles: the folder a trained model lives in."""

from __future__ import annotations

from nph.models.bundle import BundleKind, load_bundle, save_bundle

__all__ = ["BundleKind", "load_bundle", "save_bundle"]
