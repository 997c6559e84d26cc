"""Turn a training run of the built-in U-Net model into model folders: a snapshot of the EMA weights, and the
diffusers pipeline folders that ship (`sd/` with the live previews' latent -> RGB map, `controlnet-canny/`).

A run folder (tiny.train's `--out`) holds each phase's checkpoint (`unet.pt`, ...) and, once a phase ends, its
trained part as a model folder (`vae/`, `text_encoder/`, `unet/`, `controlnet/`, and `tokenizer/`). `snapshot`
writes the UNet checkpoint's EMA weights as those folders before the phase ends; `write_pipeline` puts the folders
together as a `StableDiffusionPipeline` (tiny.train's `export` phase calls it with the run's noise schedule).

>>> import tempfile
>>> from pathlib import Path
>>> from imagegen_nb.tiny import components, export
>>> from imagegen_nb.tiny.checkpoint import Checkpoint
>>> folder = tempfile.TemporaryDirectory()
>>> run, arch = Path(folder.name), components.SMOKE
>>> components.build_vae(arch).save_pretrained(run / "vae")
>>> tokenizer = components.build_tokenizer(run / "tokenizer", arch)
>>> Checkpoint(run / "unet.pt").save({"ema_te": components.build_text_encoder(len(tokenizer), arch).state_dict(),
...                                   "ema_unet": components.build_unet(arch).state_dict(), "step": 7, "losses": []})
>>> export.snapshot(run, arch)                          # the checkpoint's step; unet/ and text_encoder/ written
7
>>> sd = export.write_pipeline(run, run / "weights", components.build_scheduler("dpm"))
>>> sorted(p.name for p in sd.iterdir())
['model_index.json', 'scheduler', 'text_encoder', 'tokenizer', 'unet', 'vae']
>>> (sd / "vae" / "latent_rgb.json").exists()           # the preview map, fitted on the VAE at export
True
>>> folder.cleanup()
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from . import components, latent_rgb
from .checkpoint import Checkpoint


def snapshot(out: Path, arch: components.Architecture) -> int:
    """Write the EMA text encoder and UNet of the last UNet checkpoint as model folders, without training (so a
    ControlNet or an evaluation can start from a run still in progress). Returns the checkpoint's step."""
    state = Checkpoint(out / "unet.pt").load()
    if state is None:
        raise FileNotFoundError(f"no UNet checkpoint in {out}; train the unet phase first")
    tokenizer = components.build_tokenizer(out / "tokenizer", arch)
    text_encoder, unet = components.build_text_encoder(len(tokenizer), arch), components.build_unet(arch)
    text_encoder.load_state_dict(state["ema_te"])
    unet.load_state_dict(state["ema_unet"])
    unet.save_pretrained(out / "unet")
    text_encoder.save_pretrained(out / "text_encoder")
    return state["step"]


def write_pipeline(out: Path, dest: Path, scheduler, *, fp16: bool = True) -> Path:
    """Write the trained parts in the run folder `out` as a `StableDiffusionPipeline` folder `dest / "sd"` that
    samples with `scheduler` (and `dest / "controlnet-canny"` beside it, if the run has a ControlNet), with the
    latent -> RGB map of its VAE (tiny.latent_rgb) so the runtime's live previews need no shapes world. The VAE
    is the fine-tuned decoder's (`vae_decoder/`) where the run has one. Returns the pipeline folder."""
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import PreTrainedTokenizerFast, T5EncoderModel

    vae_dir = out / "vae_decoder" if (out / "vae_decoder").exists() else out / "vae"
    pipe = StableDiffusionPipeline(
        vae=AutoencoderKL.from_pretrained(vae_dir),
        text_encoder=T5EncoderModel.from_pretrained(out / "text_encoder"),
        tokenizer=PreTrainedTokenizerFast.from_pretrained(out / "tokenizer"),
        unet=UNet2DConditionModel.from_pretrained(out / "unet"),
        scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    if fp16:  # the text encoder stays fp32: T5 keeps some layers in fp32, and it is small
        for part in (pipe.unet, pipe.vae):
            part.to(torch.float16)
    sd = dest / "sd"
    if sd.exists():
        shutil.rmtree(sd)
    pipe.save_pretrained(sd, safe_serialization=True)
    latent_rgb.write(sd / "vae")  # the live previews' map, so the runtime needs no shapes world
    if (out / "controlnet").exists():
        from diffusers import ControlNetModel

        cn = ControlNetModel.from_pretrained(out / "controlnet")
        if fp16:
            cn.to(torch.float16)
        cn.save_pretrained(dest / "controlnet-canny", safe_serialization=True)
    return sd
