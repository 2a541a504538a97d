"""--compile's parts on their own: the auto policy's decision each way, the shapes held within their bound (the
least recently used released, and loaded again from disk), the weights' fingerprint, the timers leaving compiles
out. The stand-in backend (plain torch.export, saved and loaded) exports the tiny models for real in seconds; the
end-to-end test in tests/run/test_compile_run.py compiles with AOTInductor."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch

from pipeline.models.compiled import keys
from pipeline.models.compiled.backends import ExportOnly
from pipeline.models.compiled.denoisers import CompiledModels, Denoisers
from pipeline.models.compiled.held import HeldShapes, shape_bound
from pipeline.models.compiled.policy import SPEEDUP, Policy


def weighed(queue: int, estimate: float, eager_seconds: float = 2.0, speedup: float = 1.25) -> bool:
    """Whether `auto` compiles a shape after its first batch (one image, `eager_seconds` eager) in a queue."""
    policy = Policy("auto", queue, speedup=speedup)
    assert policy.decide("768x512 batch 1 bfloat16", lambda shape: (estimate, "forced")) is False  # measured first
    policy.shapes["768x512 batch 1 bfloat16"].packages["unet-x"] = ("unet", 1, "", "")
    policy.batch("768x512 batch 1 bfloat16", 1, eager_seconds)
    return policy.decide("768x512 batch 1 bfloat16", lambda shape: (estimate, "forced"))


def test_auto_stays_eager_for_four_photos_and_compiles_for_a_large_queue():
    # 3 images left x 2 s x (1 - 1/1.25) = 1.2 s saved: not worth a 60 s compile; 3999 left save 1600 s
    assert weighed(4, 60.0) is False
    assert weighed(4000, 60.0) is True
    # a forced estimate each way turns the same queues round
    assert weighed(4, 0.5) is True
    assert weighed(4000, 1e6) is False


def test_auto_weighs_the_speedup_the_bench_measured_on_this_machine(tmp_path):
    # 3999 images left x 2 s: at 1.25x they save 1600 s, at 1.02x 157 s, at 1.0x (no gain measured) nothing
    assert weighed(4000, 600.0, speedup=1.25) is True
    assert weighed(4000, 600.0, speedup=1.02) is False
    assert weighed(4000, 1.0, speedup=1.0) is False
    assert weighed(4000, 1.0, speedup=SPEEDUP) is False  # nothing measured on this machine: no gain assumed
    models = CompiledModels(1, backend=ExportOnly(), root=tmp_path)
    unet = torch.nn.Linear(10, 10).to(torch.bfloat16)
    models.speedup_key = keys.speedup_key("export", unet)
    assert Denoisers(models, "auto").report()["speedup"] == {"weighed": SPEEDUP, "source": "assumed"}
    models.store.note_speedup(models.speedup_key, 1.0712, "generate stage, compiled against eager")
    report = Denoisers(models, "auto").report()
    assert report["speedup"] == {"weighed": 1.071, "source": "measured by the bench on this machine"}
    other = keys.speedup_key("export", unet.float())  # another format, another machine or model: not this one
    assert models.store.speedup(other) is None


def test_on_compiles_from_the_first_batch_and_off_never():
    assert Policy("on", 1).decide("s", None) is True
    assert Policy("off", 10**6).decide("s", None) is False


def test_a_rare_shape_is_weighed_by_its_share_of_the_queue():
    policy = Policy("auto", 1000, speedup=1.25)
    for name, frames in (("common", 99), ("rare", 1)):
        policy.decide(name, None)
        policy.shapes[name].packages["k"] = ("unet", 1, "", "")
        policy.batch(name, frames, 0.5 * frames)
    # 900 left: the common shape expects ~891 of them, the rare one ~9
    assert policy.decide("common", lambda shape: (30.0, "forced")) is True
    assert policy.decide("rare", lambda shape: (30.0, "forced")) is False


def test_the_bound_keeps_the_shapes_that_fit_in_half_the_memory():
    assert shape_bound(3 * 2**30, available=16 * 2**30) == 2
    assert shape_bound(3 * 2**30, available=2 * 2**30) == 1
    assert shape_bound(1, available=2**40) == 4


def unet_args(unet, height: int, width: int) -> tuple:
    generator = torch.Generator().manual_seed(height * 100 + width)
    sample = torch.randn(1, unet.config.in_channels, height, width, generator=generator)
    text = torch.randn(1, 77, unet.config.cross_attention_dim, generator=generator)
    return sample, torch.tensor(500), text


def test_held_shapes_stay_within_the_bound_and_a_released_one_loads_again(tiny_stack, tmp_path):
    unet = tiny_stack.pipe.unet
    models = CompiledModels(1, backend=ExportOnly(), root=tmp_path, bound=2)
    run = Denoisers(models, "on", queue=4)
    shapes = {"64x64": (8, 8), "128x64": (8, 16), "64x128": (16, 8)}
    refs = {}
    for name, (height, width) in shapes.items():
        args = unet_args(unet, height, width)
        with torch.inference_mode(), run.batch(name, 1):
            out = run.call("unet", unet, args, lambda a=args: unet(*a[:2], encoder_hidden_states=a[2]).sample)
            eager = unet(*args[:2], encoder_hidden_states=args[2]).sample
        torch.testing.assert_close(out, eager, rtol=1e-4, atol=1e-4)  # the exported model is the model
        refs[name] = weakref.ref(next(iter(models.held.shapes[name].values())))
    assert list(models.held.shapes) == ["128x64", "64x128"]
    assert models.held.released == ["64x64"]
    gc.collect()
    assert refs["64x64"]() is None  # its package (and its copy of the weights) is gone from memory
    assert run.made == {"compiled": 3}
    args = unet_args(unet, 8, 8)
    with torch.inference_mode(), run.batch("64x64", 1):
        run.call("unet", unet, args, lambda: pytest.fail("a compiled batch ran eager"))
    assert run.made == {"compiled": 3, "loaded": 1}  # from disk: not compiled again
    assert list(models.held.shapes) == ["64x128", "64x64"]
    report = run.report()
    assert report["packages"] == {"compiled": 3, "loaded": 1}
    assert report["shapes_released"] == 2


def test_the_fingerprint_follows_the_weights(tiny_stack):
    net = tiny_stack.pipe.controlnet.nets[0]
    before = keys.fingerprint(net)
    assert keys.fingerprint(net) == before
    weight = next(net.parameters())
    kept = weight.detach().clone()
    with torch.no_grad():
        weight.add_(0.5)  # a fused LoRA changes every value of the layers it touches
        try:
            assert keys.fingerprint(net) != before
        finally:
            weight.copy_(kept)
    assert keys.fingerprint(net) == before


def test_a_stage_timer_leaves_out_what_ran_untimed():
    import time

    from pipeline.frames import Frame
    from pipeline.models.runtime import untimed
    from pipeline.stages.timing import timed

    frame = Frame.__new__(Frame)
    frame.timings = {}
    with timed([frame], "generate"):
        time.sleep(0.05)
        with untimed():
            time.sleep(0.3)
    assert 0.04 < frame.timings["generate"] < 0.2


def test_the_workers_reports_are_summed_into_one():
    from pipeline.models.compiled.reports import merge_compile_reports

    def one(decision: str, images: int, compiled: int, seconds: float) -> dict:
        shape = {"images": images, "decision": decision, "why": decision, "estimate_seconds": None}
        return {
            "choice": "auto",
            "backend": "aotinductor",
            "shapes_held_at_most": 2,
            "compile_seconds": seconds,
            "load_seconds": 1.0,
            "packages": {"compiled": compiled, "loaded": 1},
            "shapes_released": 0,
            "failed": [],
            "shapes": {"768x512 batch 1 bfloat16": shape},
        }

    merged = merge_compile_reports([one("eager", 3, 0, 0.0), one("compile", 40, 3, 90.0), {"choice": "auto"}])
    assert merged["processes"] == 2
    assert merged["packages"] == {"compiled": 3, "loaded": 2}
    assert merged["compile_seconds"] == 90.0 and merged["load_seconds"] == 2.0
    assert merged["shapes"]["768x512 batch 1 bfloat16"]["images"] == 43
    assert merged["shapes"]["768x512 batch 1 bfloat16"]["decision"] == "compile"
    assert merge_compile_reports([{"choice": "off"}]) == {"choice": "off"}


def test_each_ray_actor_expects_its_share_of_the_jobs():
    import json

    from pipeline.run.engines.ray import actor_share

    rows = [{"styles": json.dumps([["boho", "modern"], ["boho"]])}, {"styles": json.dumps([["boho"]])}]
    assert actor_share(rows, 1, 2) == 2
    assert actor_share(rows, 3, 2) == 6


def test_release_all_lets_every_held_package_go():
    """What the bench does before timing the same images eager: the packages' weights leave memory."""

    class Package:
        pass

    held, refs = HeldShapes(bound=2), []
    for shape in ("64x64", "128x64"):
        package = Package()
        refs.append(weakref.ref(package))
        held.hold(shape, "unet-x", package)
    del package
    held.release_all()
    assert held.shapes == {} and held.released == ["64x64", "128x64"]
    assert all(ref() is None for ref in refs)
