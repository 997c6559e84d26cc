"""Style reference pictures: `style=` and `style_scale=` on the task functions through IP-Adapter (loaded once per
cached model, installed for a call only), their recipes and `regenerate`, InstantStyle's style-only layers for
SDXL, and the checks on arguments, files and recipes. The IP-Adapters are built here with random weights from the
UNets' configs (`testing.make_tiny_ip_adapter`), in h94/IP-Adapter's safetensors layout."""

from __future__ import annotations

import datetime
import io
import json
import warnings

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

import imagegen_nb as ig
from imagegen_nb import recipes, style, testing
from imagegen_nb.errors import RecipeError

STEPS = 4


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    """A random IP-Adapter (and image encoder) for the built-in model's UNet."""
    from diffusers import StableDiffusionPipeline

    unet = StableDiffusionPipeline.from_pretrained(ig.tiny.model_path()).unet
    return str(testing.make_tiny_ip_adapter(unet, tmp_path_factory.mktemp("ip_adapter")))


@pytest.fixture(scope="module")
def reference():
    return ig.generate("a blue square on a black background", seed=11, num_inference_steps=STEPS, progress=False)


def _px(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def _gen(prompt="a red circle to the left of a yellow triangle", **kw):
    return ig.generate(prompt, seed=3, num_inference_steps=STEPS, progress=False, **kw)


def test_style_changes_the_picture_and_leaves_no_trace_in_the_model(adapter, reference):
    ig.cache.clear()
    fresh = _px(_gen())
    styled = _px(_gen(style=reference, ip_adapter=adapter))
    assert styled.shape == fresh.shape == (64, 64, 3)
    assert np.abs(styled - fresh).mean() > 1.0  # the reference picture is read
    assert (_px(_gen()) == fresh).all()  # the UNet has its own attention processors again, bit for bit
    # the adapter was loaded once, into the cached model, and counted in its bytes
    entry = ig.cache.shared.entry(None)
    assert list(entry.ip_adapters) == [adapter]
    loads, nbytes = ig.cache.shared.loads, ig.cache.info()["bytes"]
    assert (_px(_gen(style=reference, ip_adapter=adapter)) == styled).all()  # and the same again
    assert ig.cache.shared.loads == loads and ig.cache.info()["bytes"] == nbytes


def test_style_scale_moves_from_the_prompt_alone_to_the_reference(adapter, reference):
    plain = _px(_gen())
    assert (_px(_gen(style=reference, style_scale=0, ip_adapter=adapter)) == plain).all()
    half = np.abs(_px(_gen(style=reference, style_scale=0.3, ip_adapter=adapter)) - plain).mean()
    full = np.abs(_px(_gen(style=reference, style_scale=1.0, ip_adapter=adapter)) - plain).mean()
    assert 0 < half < full


def test_style_works_on_all_four_tasks(adapter, reference):
    source = ig.generate("a green circle", seed=2, num_inference_steps=STEPS, progress=False)
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 16:48] = 255
    runs = {
        "edit": lambda **kw: ig.edit(source, "a red circle", seed=1, num_inference_steps=STEPS, progress=False, **kw),
        "inpaint": lambda **kw: ig.inpaint(source, mask, "a red circle", seed=1, num_inference_steps=STEPS,
                                           progress=False, **kw),
        "control": lambda **kw: ig.control(source, "a red circle", seed=1, num_inference_steps=STEPS,
                                           progress=False, **kw),
    }
    for task, run in runs.items():
        plain, styled = run(), run(style=reference, ip_adapter=adapter)
        assert styled.size == plain.size == (64, 64), task
        assert np.abs(_px(styled) - _px(plain)).mean() > 0.5, task
        assert ig.recipe(styled)["style"]["hash"] == style.picture_hash(reference), task
        assert (_px(ig.regenerate(styled)) == _px(styled)).all(), task
        if task == "inpaint":  # outside the mask every pixel stays the source's
            assert (_px(styled)[mask == 0] == _px(source)[mask == 0]).all()


def test_recipe_records_the_style_and_regenerate_remakes_it(adapter, reference, tmp_path):
    image = _gen(style=reference, style_scale=0.8, ip_adapter=adapter)
    r = ig.recipe(image)
    assert r["style"] == {"hash": style.picture_hash(reference), "scale": 0.8, "ip_adapter": adapter}
    assert (_px(ig.regenerate(image)) == _px(image)).all()
    # a saved PNG keeps the recipe but not the reference picture: regenerate asks for it, and checks it
    path = tmp_path / "styled.png"
    ig.save(image, path)
    with pytest.raises(ValueError, match="pass style="):
        ig.regenerate(path)
    assert (_px(ig.regenerate(path, style=reference)) == _px(image)).all()
    other = _gen("a pink circle")
    with pytest.warns(UserWarning, match="not the one the recipe recorded"):
        ig.regenerate(path, style=other)
    # style=None makes it again without the reference
    assert (_px(ig.regenerate(image, style=None)) == _px(_gen())).all()
    assert "style=style" in recipes.read(image).code()


def test_a_batch_with_style_is_remade_bit_for_bit(adapter, reference):
    images = ig.generate(["a red circle", "two green squares"], seed=5, num_inference_steps=STEPS, batch_size=2,
                         style=reference, ip_adapter=adapter, progress=False)
    for image in images:
        assert (_px(ig.regenerate(image)) == _px(image)).all()


def test_sdxl_style_reaches_only_instantstyles_style_layers(tmp_path, reference):
    from diffusers import DiffusionPipeline

    model = testing.make_tiny_model("sdxl", tmp_path / "sdxl")
    unet = DiffusionPipeline.from_pretrained(model).unet
    weights = str(testing.make_tiny_ip_adapter(unet, tmp_path / "ip_sdxl"))
    kw = dict(model=str(model), seed=0, width=32, height=32, num_inference_steps=STEPS, progress=False)
    plain = _px(ig.generate("a cat", **kw))
    styled = _px(ig.generate("a cat", style=reference, ip_adapter=weights, **kw))
    assert np.abs(styled - plain).mean() > 0.1
    assert (_px(ig.generate("a cat", **kw)) == plain).all()
    scales = {name: p.scale[0] for name, p in ig.cache.shared.entry(str(model)).ip_adapters[weights]
              .processors.items() if hasattr(p, "scale")}
    listening = {name for name, s in scales.items() if s}
    assert listening == {n for n in scales if n.startswith("up_blocks.0.attentions.1.")}
    assert scales[next(iter(listening))] == ig.registry.FAMILIES["sdxl"].default_style_scale


def test_a_wrong_adapter_is_refused_and_the_model_still_works(tmp_path, adapter, reference):
    from diffusers import DiffusionPipeline

    unet = DiffusionPipeline.from_pretrained(testing.make_tiny_model("sdxl", tmp_path / "sdxl")).unet
    other = str(testing.make_tiny_ip_adapter(unet, tmp_path / "ip_other"))
    plain = _px(_gen())
    with pytest.raises(ValueError, match="does not fit the built-in model"):
        _gen(style=reference, ip_adapter=other)
    assert other not in ig.cache.shared.entry(None).ip_adapters
    assert (_px(_gen()) == plain).all()
    assert np.abs(_px(_gen(style=reference, ip_adapter=adapter)) - plain).mean() > 1.0


def test_bad_style_arguments_are_errors_that_name_the_fix(adapter, reference, tmp_path):
    from diffusers import StableDiffusionPipeline

    ig.cache.add("no-adapter", StableDiffusionPipeline.from_pretrained(testing.make_tiny_model(
        "sd15", tmp_path / "sd15")), family="sd-turbo")  # SD 2.1's family: no IP-Adapter is published for it
    with pytest.raises(ValueError, match="style_scale= was given without style="):
        _gen(style_scale=0.5)
    with pytest.raises(ValueError, match="ip_adapter= was given without style="):
        _gen(ip_adapter=adapter)
    with pytest.raises(TypeError, match="style_scale must be a number"):
        _gen(style=reference, style_scale="0.5", ip_adapter=adapter)
    with pytest.raises(ValueError, match=r"style_scale must be in \[0, 2\]"):
        _gen(style=reference, style_scale=3, ip_adapter=adapter)
    with pytest.raises(FileNotFoundError, match="style: no file"):
        _gen(style=str(tmp_path / "missing.png"), ip_adapter=adapter)
    with pytest.raises(ValueError, match="sd-turbo models have none by default; pass ip_adapter="):
        ig.generate("a cat", model="no-adapter", style=reference, progress=False)
    ig.cache.evict("no-adapter")
    with pytest.raises(ValueError, match="pickle file"):
        _gen(style=reference, ip_adapter=str(tmp_path / "adapter.bin"))
    with pytest.raises(FileNotFoundError, match="no image_encoder/config.json beside it"):
        lone = tmp_path / "lone.safetensors"
        lone.write_bytes(open(adapter, "rb").read())
        _gen(style=reference, ip_adapter=str(lone))
    with pytest.raises(TypeError, match="pass style="):
        _gen(ip_adapter_image=reference)
    with pytest.raises(TypeError, match="did you mean 'style_scale'"):
        _gen(style=reference, ip_adapter=adapter, style_scal=0.5)


def test_flux_reads_the_style_picture_in_its_double_stream_blocks(tmp_path, reference):
    from diffusers import DiffusionPipeline

    model = testing.make_tiny_model("flux-dev", tmp_path / "flux")
    weights = str(testing.make_tiny_ip_adapter(DiffusionPipeline.from_pretrained(model).transformer,
                                               tmp_path / "ip_flux"))
    kw = dict(model=str(model), seed=0, width=32, height=32, num_inference_steps=3, progress=False)
    plain = _px(ig.generate("a cat", **kw))
    image = ig.generate("a cat", style=reference, ip_adapter=weights, **kw)
    assert np.abs(_px(image) - plain).mean() > 0.5
    assert (_px(ig.generate("a cat", **kw)) == plain).all()
    assert (_px(ig.regenerate(image)) == _px(image)).all()
    edited = ig.edit(plain.astype(np.uint8), "a cat", strength=0.8, style=reference, ip_adapter=weights,
                     **{k: v for k, v in kw.items() if k not in ("width", "height")})
    assert edited.size == (32, 32) and ig.recipe(edited)["style"]["ip_adapter"] == weights
    processors = ig.cache.shared.entry(str(model)).ip_adapters[weights].processors
    assert {n.split(".")[0] for n, p in processors.items() if hasattr(p, "scale")} == {"transformer_blocks"}


def test_the_registry_names_each_familys_published_adapter(tmp_path, reference):
    families = ig.registry.FAMILIES
    assert families["sd15"].ip_adapter.startswith("h94/IP-Adapter/models/")
    assert families["sdxl"].ip_adapter.startswith("h94/IP-Adapter/sdxl_models/")
    assert families["sd-turbo"].ip_adapter is None  # SD 2.1 has none published
    flux = style._adapter(None, families["flux-dev"], allow_pickle=False)
    assert (flux.location, flux.weight_name, flux.encoder_location) == (
        "XLabs-AI/flux-ip-adapter", "ip_adapter.safetensors", "openai/clip-vit-large-patch14")
    # named explicitly (as a recipe names it), the family's adapter still finds its encoder
    again = style._adapter(families["flux-dev"].ip_adapter, families["flux-dev"], allow_pickle=False)
    assert again == flux
    model = testing.make_tiny_model("sd3", tmp_path / "sd3")
    with pytest.raises(ValueError, match="not supported yet"):
        ig.generate("a cat", model=str(model), style=reference, width=32, height=32, progress=False)


def test_a_recipe_may_not_name_a_pickle_adapter_or_smuggle_one_in_extra(adapter, reference):
    image = _gen(style=reference, ip_adapter=adapter)
    data = json.loads(image.info[recipes.INFO_KEY])
    bad = dict(data, style=dict(data["style"], ip_adapter="evil.bin"))
    with pytest.raises(RecipeError, match="may not name"):
        recipes.Recipe.from_dict(bad)
    with pytest.raises(RecipeError, match="may not set"):
        recipes.Recipe.from_dict(dict(data, extra={"ip_adapter": "evil.bin"}))
    with pytest.raises(RecipeError, match="10 hex digits"):
        recipes.Recipe.from_dict(dict(data, style=dict(data["style"], hash="zz")))
    # a damaged recipe in a PNG is refused before anything loads
    info = PngImagePlugin.PngInfo()
    info.add_text(recipes.INFO_KEY, json.dumps(bad))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", pnginfo=info)
    with warnings.catch_warnings(), pytest.raises(RecipeError):
        ig.regenerate(Image.open(io.BytesIO(buffer.getvalue())), style=reference)


def test_the_studio_takes_a_style_picture_from_the_gallery_and_gives_it_back(adapter, reference):
    studio = ig.Studio()
    studio.kwargs = {"prompt": "a red circle", "seed": 3, "num_inference_steps": STEPS}
    studio.ip_adapter.value = adapter
    assert "style" not in studio.kwargs  # no picture, no style
    studio.generate_button.click(); studio.wait()
    plain = studio.results[-1]
    assert ig.recipe(plain)["style"] is None
    studio.send_to("style", reference)
    assert studio.style_picture.label.value == "style picture: 64x64"
    studio.style_scale.value = 0.8
    studio.generate_button.click(); studio.wait()
    styled = studio.results[-1]
    assert studio.error is None
    assert ig.recipe(styled)["style"] == {"hash": style.picture_hash(reference), "scale": 0.8,
                                          "ip_adapter": adapter}
    assert (_px(styled) == _px(ig.generate("a red circle", seed=3, num_inference_steps=STEPS, style=reference,
                                           style_scale=0.8, ip_adapter=adapter, progress=False))).all()
    # "Use settings" on the plain picture clears the style; on the styled one it brings the picture back
    studio.select(0); studio.use_button.click()
    assert studio.style_picture.image is None and "style" not in studio.kwargs
    studio.select(1); studio.use_button.click()
    assert style.picture_hash(studio.kwargs["style"]) == style.picture_hash(reference)
    assert studio.kwargs["style_scale"] == 0.8
    studio.style_picture.clear_button.click()
    assert "style" not in studio.kwargs
    # an upload PIL cannot read is an error in the panel, not a traceback
    studio.style_picture.upload.value = ({"name": "bad.png", "type": "image/png", "size": 13,
                                          "content": memoryview(b"not a picture"),
                                          "last_modified": datetime.datetime.now(datetime.timezone.utc)},)
    assert "not a picture PIL can read" in studio.message.value
    with pytest.raises(TypeError, match="unknown argument 'style_scal'"):
        studio.kwargs = {"style_scal": 0.5}


def test_the_command_line_takes_a_style_picture_and_needs_it_again_to_regenerate(adapter, reference, tmp_path,
                                                                                 capsys):
    from imagegen_nb.cli import main

    reference.save(tmp_path / "ref.png")
    out = tmp_path / "styled.png"
    assert main(["generate", "a red circle", "--seed", "3", "--steps", str(STEPS), "--style", str(tmp_path / "ref.png"),
                 "--style-scale", "0.7", "--ip-adapter", adapter, "-o", str(out)]) == 0
    assert ig.recipe(out)["style"]["scale"] == 0.7
    assert main(["regenerate", str(out), "-o", str(tmp_path / "again.png")]) == 2
    assert "pass style=" in capsys.readouterr().err
    assert main(["regenerate", str(out), "--style", str(tmp_path / "ref.png"), "-o", str(tmp_path / "again.png")]) == 0
    assert (_px(Image.open(tmp_path / "again.png")) == _px(Image.open(out))).all()
    assert main(["generate", "a red circle", "--lora", "x.safetensors=heavy"]) == 2
    assert "--lora x.safetensors=heavy: the weight after '=' must be a number" in capsys.readouterr().err
