"""The engine end to end on tiny images: it learns, reports, stops and reproduces the seed recipe."""

from __future__ import annotations

import importlib.resources
import io
import itertools

import pytest
import torch
from PIL import Image
from reference_gatys import reference_losses, reference_vgg

from stylecore import Cancelled, OptionsError, StyleOptions, preset, stylize
from stylecore.engine import output_size, scale_sizes, split_steps
from stylecore.losses import gram
from stylecore.objective import resize_image
from stylecore.option_specs import OPTION_SPECS
from stylecore.options import report_every_for
from stylecore.tensors import image_to_tensor

TINY = dict(size=64, scales=1, device="cpu")


def style_distance(out: Image.Image, style: Image.Image, vgg) -> float:
    """A scale-free style distance: mean over layers of ||G(out)-G(style)||² / ||G(style)||²."""
    layers = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
    with torch.no_grad():
        fo = vgg(image_to_tensor(out), layers)
        fs = vgg(image_to_tensor(style.resize(out.size)), layers)
    terms = []
    for layer in layers:
        go = gram(fo[layer]) / fo[layer][0, 0].numel()
        gs = gram(fs[layer]) / fs[layer][0, 0].numel()
        terms.append(((go - gs) ** 2).sum().item() / (gs**2).sum().item())
    return sum(terms) / len(terms)


def test_a_short_run_lowers_the_loss_and_moves_towards_the_style(vgg, content_img, style_img):
    events = []
    res = stylize(content_img, style_img, StyleOptions(steps=30, **TINY), on_progress=events.append, model=vgg)
    assert res.image.size == (64, 48) and res.image.mode == "RGB"
    assert events[-1].loss < 0.5 * events[0].loss
    assert res.stats.total_loss < events[0].loss
    assert style_distance(res.image, style_img, vgg) < style_distance(content_img, style_img, vgg)


def test_progress_events_arrive_in_order_with_previews(vgg, content_img, style_img):
    events = []
    opts = StyleOptions(steps=8, preview_every=3, preview_size=32, size=64, scales=2, min_scale_size=32, device="cpu")
    stylize(content_img, style_img, opts, on_progress=events.append, model=vgg)
    assert [e.step for e in events] == list(range(1, 9))
    assert all(e.total == 8 for e in events)
    assert [e.scale for e in events] == [1] * 4 + [2] * 4
    assert [e.step for e in events if e.preview is not None] == [3, 6, 8]
    assert all(max(e.preview.size) == 32 for e in events if e.preview is not None)
    assert all(b.elapsed >= a.elapsed for a, b in itertools.pairwise(events))
    assert events[-1].eta == pytest.approx(0.0, abs=1e-9) and events[0].eta > 0


def test_sparse_reports_come_every_nth_step_and_at_the_end(vgg, content_img, style_img):
    assert (report_every_for(2000), report_every_for(150), report_every_for(6)) == (20, 1, 1)
    events = []
    opts = StyleOptions(steps=11, report_every=report_every_for(11, events=3), preview_every=4, **TINY)
    stylize(content_img, style_img, opts, on_progress=events.append, model=vgg)
    # every 3rd step, each due preview, and the last step: the loss is read back only then
    assert [e.step for e in events] == [3, 4, 6, 8, 9, 11]


def test_cancel_stops_within_one_step(vgg, content_img, style_img):
    seen = []

    def should_cancel() -> bool:
        return len(seen) >= 3

    with pytest.raises(Cancelled) as err:
        stylize(
            content_img,
            style_img,
            StyleOptions(steps=50, **TINY),
            on_progress=seen.append,
            should_cancel=should_cancel,
            model=vgg,
        )
    assert len(seen) == 3  # asked before step 4, stopped before running it
    partial = err.value.partial
    assert partial is not None and partial.stats.cancelled and partial.stats.steps == 3
    assert partial.image.size == (64, 48)


def test_seed_preset_matches_the_reference_recipe_within_3_percent(vgg, content_img):
    # the recipe resizes the style to the content's exact shape; give both at the same pixels
    style = Image.open(io.BytesIO(_png(_stripes()))).convert("RGB").resize(content_img.size)
    ref_vgg = reference_vgg()
    ref = reference_losses(image_to_tensor(content_img), image_to_tensor(style), 60, ref_vgg)
    ours = {}
    opts = preset("seed", size=min(content_img.size), steps=60, device="cpu")
    stylize(content_img, style, opts, on_progress=lambda e: ours.__setitem__(e.step, e.loss), model=vgg)
    for step in (10, 30, 60):
        assert ours[step] == pytest.approx(ref[step], rel=0.03), step
    assert ours[60] < 0.9 * ours[10]  # and it really optimised


def _stripes() -> Image.Image:
    from conftest import _stripes_image

    return _stripes_image(64, 48, seed=5)


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def test_same_seed_same_image_and_noise_init_depends_on_seed(vgg, content_img, style_img):
    opts = StyleOptions(steps=4, init="noise", seed=7, **TINY)
    a = stylize(content_img, style_img, opts, model=vgg).image
    b = stylize(content_img, style_img, opts, model=vgg).image
    c = stylize(content_img, style_img, opts.replace(seed=8), model=vgg).image
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()


def test_inputs_as_bytes_and_several_styles(vgg, content_img, style_img, png_bytes):
    other = style_img.transpose(Image.Transpose.ROTATE_90)
    res = stylize(
        png_bytes(content_img),
        [png_bytes(style_img), other],
        StyleOptions(steps=3, style_blend=(2.0, 1.0), **TINY),
        model=vgg,
    )
    assert res.image.size == (64, 48)
    with pytest.raises(ValueError, match="style_blend"):
        stylize(content_img, [style_img, other], StyleOptions(steps=1, style_blend=(1.0,), **TINY), model=vgg)


def test_a_lower_strength_keeps_more_of_the_content(vgg, content_img, style_img):
    """Strength scales the style term: at the lowest declared strength the photo comes back nearly
    unchanged, at the highest the style has taken it further away."""
    spec = OPTION_SPECS["strength"]
    base = StyleOptions(steps=5, lr=0.05, **TINY)
    photo = image_to_tensor(content_img)
    gentle = image_to_tensor(stylize(content_img, style_img, base.replace(strength=spec.low), model=vgg).image)
    strong = image_to_tensor(stylize(content_img, style_img, base.replace(strength=spec.high), model=vgg).image)
    assert (gentle - photo).abs().mean() < (strong - photo).abs().mean()


@pytest.mark.parametrize("mode", ["luminance", "histogram"])
def test_preserve_colors_keeps_the_content_palette(vgg, content_img, style_img, mode):
    opts = StyleOptions(steps=10, lr=0.05, **TINY)
    plain = image_to_tensor(stylize(content_img, style_img, opts, model=vgg).image)
    kept = image_to_tensor(stylize(content_img, style_img, opts.replace(preserve_colors=mode), model=vgg).image)
    content_mean = image_to_tensor(content_img).mean((2, 3))
    assert (kept.mean((2, 3)) - content_mean).abs().sum() < (plain.mean((2, 3)) - content_mean).abs().sum()


@pytest.mark.parametrize("photo", [False, True])
def test_lbfgs_keeps_making_progress(vgg, content_img, style_img, photo):
    # In these units (losses ~1e19) torch's L-BFGS stalled after a few steps: its curvature
    # pairs were rejected and the line search collapsed to t=0. The engine rescales the problem;
    # on a real photograph its strong-Wolfe line search still settled on t=0 from the second step.
    if photo:
        samples = importlib.resources.files("stylecore") / "samples"
        content_img = Image.open(io.BytesIO((samples / "tubingen.jpg").read_bytes())).convert("RGB")
        style_img = Image.open(io.BytesIO((samples / "starry_night.jpg").read_bytes())).convert("RGB")
    losses = []
    stylize(
        content_img,
        style_img,
        StyleOptions(steps=12, optimizer="lbfgs", lr=1.0, **{**TINY, "size": 48}),
        on_progress=lambda e: losses.append(e.loss),
        model=vgg,
    )
    assert losses[-1] < 0.5 * losses[0]
    assert losses[-1] < losses[-4]  # still moving at the end, not stuck on a plateau


def test_lr_halves_every_half_life_steps(vgg, content_img, style_img):
    from stylecore.engine import Run, run_stack

    opts = StyleOptions(steps=10, lr=0.04, lr_half_life=5, stop_tol=0.0, **TINY)
    run = Run(content_img, style_img, opts, None, None)
    (res,) = run_stack([run], vgg)
    assert run.optim.param_groups[0]["lr"] == pytest.approx(0.04 * 0.5 ** (9 / 5))  # the 10th step's lr
    const = stylize(content_img, style_img, opts.replace(lr_half_life=0), model=vgg)
    assert const.image.tobytes() != res.image.tobytes()
    with pytest.raises(OptionsError, match="lr_half_life"):
        opts.replace(lr_half_life=-1)


def test_ema_tv_and_style_init_run_and_learn(vgg, content_img, style_img):
    events = []
    opts = StyleOptions(steps=6, ema=0.5, tv_weight=10.0, init="style", **TINY)
    stylize(content_img, style_img, opts, on_progress=events.append, model=vgg)
    assert events[-1].loss < events[0].loss


def test_output_size_and_scales():
    opts = StyleOptions(size=100, scales=3, min_scale_size=30)
    assert output_size(400, 200, opts) == (100, 50)
    assert output_size(200, 400, StyleOptions(size=100, size_side="short")) == (100, 200)
    assert scale_sizes((100, 50), opts) == [(25, 12), (50, 25), (100, 50)][1:]  # 25 < 30 is dropped
    assert split_steps(10, [(1, 1)] * 3) == [3, 3, 4]


@pytest.mark.parametrize(
    ("w", "h", "n"),
    [(1024, 768, 128), (768, 1024, 128), (1024, 768, 256), (712, 474, 100), (333, 333, 64), (97, 61, 40)],
)
def test_seed_preset_sizes_and_resamples_as_torchvision_resize(w, h, n):
    from conftest import _smooth_image
    from torchvision import transforms

    photo = _smooth_image(w, h, seed=w + h)
    opts = preset("seed", size=n)
    expected = transforms.Resize(n)(photo)  # what the reference recipe feeds its network
    size = output_size(w, h, opts)
    assert size == expected.size  # the long side truncated, as torchvision does: 1024x768 -> 170x128
    assert resize_image(photo, size, opts).tobytes() == expected.tobytes()


def test_a_seed_preset_run_comes_out_at_torchvisions_size(vgg, style_img):
    from conftest import _smooth_image

    res = stylize(_smooth_image(1024, 768, 3), style_img, preset("seed", size=32, steps=1, device="cpu"), model=vgg)
    assert res.image.size == (42, 32)  # int(32 * 1024 / 768) = 42; rounding would give 43


def test_timelapse_is_an_animation(vgg, content_img, style_img):
    res = stylize(
        content_img, style_img, StyleOptions(steps=4, lr=0.3, preview_every=1, timelapse="gif", **TINY), model=vgg
    )
    anim = Image.open(io.BytesIO(res.timelapse))
    assert anim.format == "GIF" and anim.n_frames >= 4


def test_options_are_validated():
    with pytest.raises(OptionsError, match="steps"):
        StyleOptions(steps=0).validate()
    with pytest.raises(OptionsError, match="strength"):
        StyleOptions(strength=float("nan")).validate()
    with pytest.raises(OptionsError, match="unknown preset"):
        preset("nope")
    opts = StyleOptions(size=77, style_blend=(1.0, 2.0))
    assert StyleOptions.from_dict({**opts.to_dict(), "future_field": 1}) == opts
