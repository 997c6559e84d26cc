"""Weight surgery for the built-in U-Net model: copy saved weights into a model, growing them where the model has
text FiLM (components.Architecture.text_film) and the saved one had none.

A grown model keeps every old weight. Each ResNet's timestep projection gets a scale half of zeros in front of its
old output (now the shift half), and the new pooled-text embedding starts silent, so the grown model starts close
to the old one and a few hundred training steps make up the rest (see `add_film`).

>>> import dataclasses, tempfile
>>> from pathlib import Path
>>> from imagegen_nb.tiny import components, surgery
>>> plain = dataclasses.replace(components.SMOKE, text_film=False)
>>> with tempfile.TemporaryDirectory() as folder:
...     components.build_unet(plain).save_pretrained(folder)
...     surgery.load_weights(components.build_unet(plain), Path(folder))           # copied as it is
...     surgery.load_weights(components.build_unet(components.SMOKE), Path(folder))  # grown: text FiLM added
False
True
"""

from __future__ import annotations

from pathlib import Path

import torch


def add_film(state: dict, own: dict) -> dict:
    """A UNet's (or ControlNet's) weights without text FiLM, `state`, fitted to `own`, the state dict of one with it:
    every ResNet's timestep projection gets a scale half of zeros (its shift half is the old projection), and the new
    pooled-text embedding starts silent (own's fresh weights, with the output norm's scale at zero). Not the same
    function: the timestep now shifts features after their normalisation instead of before it, which a few hundred
    steps of training make up for."""
    state = dict(state)
    for key, value in own.items():
        if ".time_emb_proj." in key and key in state and state[key].shape[0] * 2 == value.shape[0]:
            state[key] = torch.cat([torch.zeros_like(state[key]), state[key]])
        elif key.startswith("add_embedding."):
            state[key] = torch.zeros_like(value) if key == "add_embedding.norm2.weight" else value
    return state


def load_weights(model: torch.nn.Module, folder: Path) -> bool:
    """Copy the weights of a saved model folder (any dtype) into `model`, which must have the same shapes, or be
    the same model with text FiLM added (see `add_film`; then True is returned)."""
    from safetensors.torch import load_file

    (file,) = folder.glob("*.safetensors")
    state = {k: v.float() for k, v in load_file(file).items()}
    own = model.state_dict()
    grown = "add_embedding.norm2.weight" in own and not any(k.startswith("add_embedding.") for k in state)
    if grown:
        state = add_film(state, own)
    # T5 saves its tied input embedding once, as `shared`
    missing = [k for k in own if k not in state and not k.endswith("embed_tokens.weight")]
    wrong = [k for k in state if k not in own or own[k].shape != state[k].shape]
    if missing or wrong:
        raise ValueError(f"{folder} does not fit this architecture: {len(missing)} weights missing "
                         f"(e.g. {missing[:2]}), {len(wrong)} unexpected or of another shape (e.g. {wrong[:2]}); "
                         "start from a folder trained with the same components.Architecture (the shipped model's "
                         "is --arch film)")
    model.load_state_dict(state, strict=False)
    return grown
