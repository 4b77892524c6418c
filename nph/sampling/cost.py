"""Model FLOPs of one generated pair at a given sampling setting, counted with ``torch.utils.flop_counter``.

The four networks are built on meta tensors from an experiment config's sections (no memory, no GPU), one
batch-1 pass of each is counted, and a setting's cost is those passes times how often it runs them: the mask
U-Net once per step outside the guidance interval and twice inside it, the image U-Net once per step, each
decoder once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from nph.data.labels import NUM_CLASSES
from nph.models.image_ae import build_image_ae, downsampling_of
from nph.models.image_dm import build_image_dm
from nph.models.mask_ae import build_mask_ae
from nph.models.mask_dm import CONTEXT_DIM, build_mask_unet
from nph.models.noise import build_scheduler
from nph.sampling.defaults import SamplingSettings
from nph.sampling.diffusion import guided, sampling_timesteps

__all__ = ["mask_unet_passes", "pair_flops", "pass_flops"]


def _count(call: Callable[[], Any]) -> float:
    with torch.device("meta"), torch.inference_mode(), FlopCounterMode(display=False) as counter:
        call()
    return float(counter.get_total_flops())


def pass_flops(experiment: Mapping[str, Any]) -> dict[str, float]:
    """FLOPs of one batch-1 pass of each network of ``experiment`` (the parsed configs/experiment/<name>.yaml).

    Keys: ``mask_unet``, ``mask_decoder``, ``image_unet``, ``image_decoder``.
    """
    shape = [int(s) for s in experiment["grid"]["shape"]]
    mask_net, image_net = experiment["mask_ae"]["network"], experiment["image_ae"]["network"]
    mask_latent, image_latent = int(mask_net["latent_channels"]), int(image_net["latent_channels"])
    with torch.device("meta"):
        mask_ae, image_ae = build_mask_ae(mask_net), build_image_ae(image_net)
        mask_unet = build_mask_unet(experiment["mask_dm"]["network"], mask_latent)
        image_unet = build_image_dm(experiment["image_dm"]["network"], image_latent)
    mask_z = (1, mask_latent, *(s // mask_ae.downsampling for s in shape))
    image_z = (1, image_latent, *(s // downsampling_of(image_net) for s in shape))
    seg = (1, NUM_CLASSES, *shape)
    context = torch.zeros(1, 1, CONTEXT_DIM, device="meta")
    return {
        "mask_unet": _count(lambda: mask_unet(torch.zeros(mask_z), timesteps=torch.ones(1), context=context)),
        "mask_decoder": _count(lambda: mask_ae.decode(torch.zeros(mask_z))),
        "image_unet": _count(lambda: image_unet(torch.zeros(image_z), torch.ones(1), torch.zeros(seg))),
        "image_decoder": _count(lambda: image_ae.decode_stage_2_outputs(torch.zeros(image_z), torch.zeros(seg))),
    }


def mask_unet_passes(settings: SamplingSettings, noise: Mapping[str, Any]) -> int:
    """Batch-1 mask U-Net passes of one sample: one per step, two at the steps guidance runs at."""
    scheduler = build_scheduler(noise, settings.sampler)
    timesteps = sampling_timesteps(scheduler, settings.steps, latent_numel=1)
    steps_guided = sum(
        guided(t, settings.guidance, settings.guidance_interval, scheduler.num_train_timesteps) for t in timesteps
    )
    return len(timesteps) + steps_guided


def pair_flops(
    experiment: Mapping[str, Any], settings: SamplingSettings, passes: Mapping[str, float] | None = None
) -> dict[str, float]:
    """FLOPs of one (label map, image) pair per network and in ``total``; both LDMs sample with ``settings``.

    ``passes`` is :func:`pass_flops` of the experiment (computed when not given). The image LDM uses the
    sampler's noise kind from its own config section and has no guidance.
    """
    passes = passes or pass_flops(experiment)
    mask = mask_unet_passes(settings, experiment["mask_dm"]["noise"])
    image = mask_unet_passes(SamplingSettings(settings.sampler, settings.steps, 1.0), experiment["image_dm"]["noise"])
    flops = {
        "mask_unet": mask * passes["mask_unet"],
        "mask_decoder": passes["mask_decoder"],
        "image_unet": image * passes["image_unet"],
        "image_decoder": passes["image_decoder"],
    }
    return {**flops, "total": sum(flops.values())}
