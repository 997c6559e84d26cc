"""LoRAs: `lora=` on the task functions (loaded once per cached model, switched per call, off between calls), their
recipes (name, weight, hash; A1111's `<lora:name:weight>` and "Lora hashes"), the checks on files and recipes, and
`ig.train_lora`. The LoRAs are built here from config with small random weights, as diffusers' own tests build them."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image, PngImagePlugin

import imagegen_nb as ig
from imagegen_nb import adapters, recipes

STEPS = 4  # denoising steps per test picture: enough for LoRAs to change pixels


def _make_lora(folder, *, seed: int, scale: float = 0.05, targets=("to_q", "to_k", "to_v", "to_out.0"), model=None):
    """A LoRA for the built-in model's UNet (or `model`'s, a folder) with random weights, in diffusers' format."""
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig, get_peft_model_state_dict

    pipe = StableDiffusionPipeline.from_pretrained(model or ig.tiny.model_path())
    pipe.unet.add_adapter(LoraConfig(r=4, lora_alpha=8, target_modules=list(targets)))
    layers = {"unet_lora_layers": pipe.unet}
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in layers.values():
            for name, p in module.named_parameters():
                if "lora_" in name:
                    p.copy_(torch.randn(p.shape, generator=gen) * scale)
    StableDiffusionPipeline.save_lora_weights(folder, safe_serialization=True,
                                              **{k: get_peft_model_state_dict(m) for k, m in layers.items()})
    return folder


@pytest.fixture(scope="module")
def loras(tmp_path_factory):
    root = tmp_path_factory.mktemp("loras")
    return {"a": _make_lora(root / "style_a", seed=1),
            "b": _make_lora(root / "style_b", seed=2, targets=("to_k", "to_v"))}


pytestmark = pytest.mark.usefixtures("one_thread")


def _px(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def _gen(prompt="a red circle to the left of a blue square", **kw):
    return ig.generate(prompt, seed=3, num_inference_steps=STEPS, progress=False, **kw)


def test_a_lora_changes_the_picture_and_loads_once(loras, monkeypatch):
    from diffusers import StableDiffusionPipeline

    ig.cache.clear()
    plain = _px(_gen())
    calls = []
    original = StableDiffusionPipeline.load_lora_weights
    monkeypatch.setattr(StableDiffusionPipeline, "load_lora_weights",
                        lambda self, *a, **k: calls.append(k["adapter_name"]) or original(self, *a, **k))
    entry = ig.cache.shared.entry(None)
    unet_weights = {n: p.data_ptr() for n, p in entry.base.unet.named_parameters()}
    loads = ig.cache.shared.loads
    first = _px(_gen(lora=loras["a"]))
    again = _px(_gen(lora=str(loras["a"] / adapters.DEFAULT_WEIGHT_NAME)))  # the same file, named another way
    assert np.abs(first - plain).max() > 0 and (first == again).all()
    assert len(calls) == 1 and ig.cache.shared.loads == loads  # loaded once; the base model never reloaded
    base_now = {n: p.data_ptr() for n, p in entry.base.unet.named_parameters() if "lora_" not in n}
    assert {n.replace(".base_layer", ""): v for n, v in base_now.items()} == unet_weights
    assert ig.cache.info()["models"][0]["loras"] == [str(loras["a"] / adapters.DEFAULT_WEIGHT_NAME)]


def test_switching_and_mixing(loras):
    a, b = _px(_gen(lora=loras["a"])), _px(_gen(lora=loras["b"]))
    both = _px(_gen(lora={loras["a"]: 1.0, loras["b"]: 1.0}))
    assert (a != b).any() and (both != a).any() and (both != b).any()
    assert (_px(_gen(lora=loras["a"])) == a).all()  # back to the first: the same pixels
    assert (_px(_gen(lora={loras["a"]: 1.0, loras["b"]: 0.0})) == a).all()


def test_weight_zero_is_no_lora_and_more_weight_changes_more(loras):
    def output(weight):
        return ig.generate("a green triangle", seed=5, num_inference_steps=STEPS, progress=False,
                           lora=None if weight is None else {loras["a"]: weight})

    plain = _px(output(None))
    distances = [np.abs(_px(output(w)) - plain).mean() for w in (0.0, 0.5, 1.0, 2.0)]
    assert distances[0] == 0  # weight 0: bit for bit the model without the LoRA
    assert distances[1] < distances[2] < distances[3], distances


def test_a_call_without_lora_after_one_with_it_is_a_fresh_cache_call(loras, pixels):
    ig.cache.clear()
    fresh = {task: pixels(make()) for task, make in _tasks().items()}
    for make in _tasks(lora={loras["a"]: 0.7, loras["b"]: 0.5}).values():
        make()
    for task, make in _tasks().items():
        assert (pixels(make()) == fresh[task]).all(), task


def _tasks(**kw):
    base = Image.new("RGB", (64, 64), (245, 245, 245))
    mask = np.zeros((64, 64), bool)
    mask[:, 32:] = True
    sketch = Image.new("RGB", (64, 64), "black")
    sketch.paste((255, 255, 255), (16, 16, 48, 48))
    common = dict(seed=1, num_inference_steps=STEPS, progress=False, **kw)
    return {"generate": lambda: ig.generate("a red circle", **common),
            "edit": lambda: ig.edit(base, "a blue square", strength=0.8, **common),
            "inpaint": lambda: ig.inpaint(base, mask, "a green triangle", **common),
            "control": lambda: ig.control(sketch, "a yellow square", **common)}


def test_every_task_records_its_loras_and_a_png_remakes_them(loras, tmp_path):
    for task, make in _tasks(lora={loras["a"]: 0.8}).items():
        image = make()
        r = ig.recipe(image)
        assert r["loras"] == [{"name": "style_a", "path": str(loras["a"]), "weight": 0.8,
                               "hash": recipes.file_hash(loras["a"] / adapters.DEFAULT_WEIGHT_NAME)}], task
        assert (_px(ig.regenerate(image)) == _px(image)).all(), task
    image = _gen(lora={loras["a"]: 0.8, loras["b"]: 0.4})
    path = ig.save(image, tmp_path / "mixed.png")
    parameters = Image.open(path).info["parameters"]
    first, _, options = parameters.partition("\n")
    assert first.endswith("<lora:style_a:0.8> <lora:style_b:0.4>")
    hashes = [lo["hash"] for lo in ig.recipe(path)["loras"]]
    assert f'Lora hashes: "style_a: {hashes[0]}, style_b: {hashes[1]}"' in options
    assert (_px(ig.regenerate(path)) == _px(image)).all()
    assert (_px(ig.regenerate(path, lora=None)) == _px(_gen())).all()  # lora= overrides the recipe's


def test_regenerate_refuses_a_changed_or_missing_lora(loras, tmp_path):
    mine = shutil.copytree(loras["a"], tmp_path / "mine")
    path = ig.save(_gen(lora=mine), tmp_path / "with.png")
    _make_lora(mine, seed=9)  # the same path, other weights
    with pytest.raises(ValueError, match="has changed since this picture was made"):
        ig.regenerate(path)
    shutil.rmtree(mine)
    with pytest.raises(FileNotFoundError, match="not there any more"):
        ig.regenerate(path)


def _with_recipe(tmp_path, image, change) -> str:
    data = json.loads(image.info[recipes.INFO_KEY])
    change(data)
    info = PngImagePlugin.PngInfo()
    info.add_text(recipes.INFO_KEY, json.dumps(data))
    path = tmp_path / "tampered.png"
    image.save(path, pnginfo=info)
    return str(path)


@pytest.mark.parametrize("change, message", [
    (lambda d: d["loras"][0].update(path="evil.bin"), "may not name"),
    (lambda d: d["loras"][0].update(allow_pickle=True), "holds exactly"),
    (lambda d: d["loras"][0].update(hash="../../x"), "10 hex digits"),
    (lambda d: d["loras"][0].update(weight=float("nan")), "finite"),
    (lambda d: d.update(loras={"a": 1}), "list"),
])
def test_a_recipe_can_set_nothing_else_through_its_loras(loras, tmp_path, change, message):
    path = _with_recipe(tmp_path, _gen(lora=loras["a"]), change)
    with pytest.raises(ig.RecipeError, match=message):
        ig.regenerate(path)


def test_pickles_are_refused_unless_allowed(loras, tmp_path):
    from safetensors.torch import load_file

    state = load_file(loras["a"] / adapters.DEFAULT_WEIGHT_NAME)
    torch.save(state, tmp_path / "pytorch_lora_weights.bin")
    for given in (tmp_path / "pytorch_lora_weights.bin", tmp_path):
        with pytest.raises(ValueError, match="pickle"):
            _gen(lora=given)
    assert (_px(_gen(lora=tmp_path, allow_pickle=True)) == _px(_gen(lora=loras["a"]))).all()


@pytest.mark.parametrize("lora, error, message", [
    (3, TypeError, "lora must be None, a path"),
    ({"x.safetensors": "0.5"}, TypeError, "weight of lora"),
    ({}, ValueError, "lora is empty"),
    ("missing.safetensors", FileNotFoundError, "no such file or folder"),
    ("notes.txt", ValueError, "not a LoRA weights file"),
])
def test_bad_lora_arguments_fail_before_any_work(tmp_path, monkeypatch, lora, error, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    ig.cache.clear()
    with pytest.raises(error, match=message):
        _gen(lora=lora)
    assert ig.cache.info()["models"] == []


def test_bad_weights_and_files(loras, tmp_path):
    with pytest.raises(ValueError, match="finite"):
        _gen(lora={loras["a"]: float("inf")})
    with pytest.raises(ValueError, match="same weights as another"):
        _gen(lora=[loras["a"], loras["a"] / adapters.DEFAULT_WEIGHT_NAME])
    (tmp_path / "damaged.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="damaged"):
        _gen(lora=tmp_path / "damaged.safetensors")
    from safetensors.torch import save_file

    save_file({"conv.weight": torch.zeros(2)}, tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match="holds no LoRA weights"):
        _gen(lora=tmp_path / "model.safetensors")


def test_a_lora_for_another_architecture_is_refused_and_leaves_the_model_as_it_was(tmp_path):
    from imagegen_nb import testing

    other = _make_lora(tmp_path / "sd15_lora", seed=0, model=testing.make_tiny_model("sd15", tmp_path / "sd15"))
    before = _px(_gen())
    with pytest.raises(ValueError, match=r"does not fit the built-in model \(tiny\).*size mismatch"):
        _gen(lora=other)
    assert (_px(_gen()) == before).all()
    assert ig.cache.shared.entry(None).base.get_list_adapters().get("unet", []) == [
        a for a in ig.cache.shared.entry(None).loras]


def test_evicting_a_model_drops_its_loras(loras):
    _gen(lora=loras["a"])
    assert ig.cache.shared.entry(None).loras
    assert ig.cache.evict(None)
    entry = ig.cache.shared.entry(None)
    assert entry.loras == {} and not hasattr(entry.base.unet, "peft_config")
    _gen(lora=loras["a"])
    assert len(ig.cache.shared.entry(None).loras) == 1


def test_trace_takes_a_lora(loras):
    trace = ig.trace("a red circle", seed=3, num_inference_steps=STEPS, lora=loras["a"])
    assert (_px(trace.image) == _px(ig.generate("a red circle", seed=3, num_inference_steps=STEPS,
                                                lora=loras["a"]))).all()


# --- ig.train_lora ------------------------------------------------------------------------------------------------

def _star_data(n=2):
    from imagegen_nb.tiny import stars

    return stars.examples(n, seed=0)


def _fixed_loss(lora_dir=None) -> float:
    """The built-in model's diffusion loss on the star pictures at 32 fixed (timestep, noise) draws."""
    from diffusers import StableDiffusionPipeline

    from imagegen_nb import lora_training

    pipe = StableDiffusionPipeline.from_pretrained(ig.tiny.model_path(), dtype=torch.float32)
    if lora_dir is not None:
        pipe.load_lora_weights(lora_dir)  # plain diffusers loads what train_lora writes
    with torch.no_grad():
        x0, text = lora_training._encode(pipe, *_star_data(), "cpu")
        x0, text = x0.repeat(16, 1, 1, 1), text.repeat(16, 1, 1)
        scheduler = lora_training._noise_schedule(pipe.scheduler)
        return lora_training._diffusion_loss(pipe.unet, scheduler, x0, text, torch.Generator().manual_seed(0),
                                             5.0).item()


def test_train_lora_lowers_the_loss_and_resumes_exactly(tmp_path):
    from imagegen_nb.lora_training import LoraConfig, Training

    pictures, captions = _star_data()
    config = LoraConfig(rank=4, batch_size=4, learning_rate=5e-3)
    whole = ig.train_lora(pictures, captions, tmp_path / "whole", steps=3, config=config, progress=False)
    assert whole.steps == 3 and not whole.stopped and len(whole.losses) == 3
    assert whole.file.stat().st_size < 4_000_000
    assert _fixed_loss(whole.path) < _fixed_loss()
    # stopped after one step (as the Stop button does), then resumed to the end: the same run as unbroken
    first = ig.train_lora(pictures, captions, tmp_path / "split", steps=3, config=config, progress=False,
                          run=Training(on_step=lambda training: training.stop()))
    assert first.stopped and first.steps == 1 and first.file.exists()
    rest = ig.train_lora(pictures, captions, tmp_path / "split", steps=3, config=config, progress=False)
    assert rest.steps == 3 and rest.losses == whole.losses
    assert recipes.file_hash(rest.file) == recipes.file_hash(whole.file)
    with pytest.raises(ValueError, match="checkpoint of another run"):
        ig.train_lora(pictures, captions, tmp_path / "split", steps=4, config=LoraConfig(rank=2), progress=False)
    image = ig.generate("a red star", seed=0, num_inference_steps=STEPS, lora=whole.path, progress=False)
    assert ig.recipe(image)["loras"][0]["name"] == "whole"


@pytest.mark.parametrize("args, error, message", [
    (([], []), ValueError, "at least one picture"),
    (([Image.new("RGB", (64, 64))], ["a", "b"]), ValueError, "2 captions"),
    (([Image.new("RGB", (64, 64))], [3]), TypeError, "caption must be a string"),
])
def test_train_lora_checks_its_arguments(tmp_path, args, error, message):
    with pytest.raises(error, match=message):
        ig.train_lora(*args, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_the_checker_knows_stars_and_the_world_draws_them():
    from imagegen_nb.tiny import checker

    pictures, captions = _star_data(8)
    assert all(checker.grade(p, c) for p, c in zip(pictures, captions))
    assert not checker.grade(pictures[0], captions[0].replace("star", "circle"))


def test_a_textual_inversion_embedding_adds_a_word_and_changes_nothing_else(tmp_path, pixels):
    from safetensors.torch import save_file

    _, pipe = ig.cache.shared.pipeline(None, "generate")
    table = pipe.text_encoder.get_input_embeddings().weight
    red = table[pipe.tokenizer("red", add_special_tokens=False).input_ids[0]].detach().clone()
    file = tmp_path / "shiny.safetensors"
    save_file({"emb_params": red[None]}, file)  # A1111's layout: one vector, the word "red"'s
    plain = ig.generate("a red circle", seed=0, num_inference_steps=4, progress=False)
    held = ig.cache.info()["bytes"]
    assert (pixels(ig.generate("a red circle", seed=0, num_inference_steps=4, progress=False, lora=file))
            == pixels(plain)).all()  # prompts without the new word are untouched
    shiny = ig.generate("a shiny circle", seed=0, num_inference_steps=4, progress=False, lora=file)
    assert (pixels(shiny) == pixels(plain)).all()  # the new word is exactly the vector it was given
    assert ig.cache.info()["bytes"] == held + red.numel() * red.element_size()  # its vocabulary row is counted
    (record,) = ig.recipe(shiny)["loras"]
    assert record["kind"] == "embedding" and record["name"] == "shiny"
    assert 'TI hashes: "shiny: ' in ig.Recipe.from_dict(ig.recipe(shiny)).parameters()
    assert (pixels(ig.regenerate(shiny)) == pixels(shiny)).all()
    with pytest.raises(ValueError, match=r"has no weight; .* \(shiny:0.5\)"):
        ig.generate("a shiny circle", lora={str(file): 0.5})
    save_file({"emb_params": torch.zeros(1, 7)}, tmp_path / "narrow.safetensors")
    with pytest.raises(ValueError, match="the embedding does not fit the built-in model"):
        ig.generate("a narrow circle", lora=tmp_path / "narrow.safetensors")
