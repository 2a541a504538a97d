"""The sampler's door to compiled models: per batch, the policy says whether its shape runs compiled; each model
call then goes to its package (held, loaded, or compiled first) or runs eager, timed for the policy. Compiling and
loading run `untimed`: the stage times are the processing's, and the report says what compiling took apart."""

from __future__ import annotations

import time
from collections import Counter
from contextlib import contextmanager

import torch

from pipeline.models.compiled import keys
from pipeline.models.compiled.backends import AOTInductor, dense
from pipeline.models.compiled.held import HeldShapes
from pipeline.models.compiled.policy import LOAD_RATE, Policy, default_estimate
from pipeline.models.compiled.reports import shape_json
from pipeline.models.compiled.store import PackageStore
from pipeline.models.prepacked import forget
from pipeline.models.runtime import untimed


class UNetCall(torch.nn.Module):
    """The UNet as the sampler calls it, plain tensors in and out: the ControlNets' summed residuals last (12 down
    block residuals, then the mid block's); none for a UNet steered by no ControlNet."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, sample, step, text, *residuals):
        return self.unet(
            sample,
            step,
            encoder_hidden_states=text,
            down_block_additional_residuals=list(residuals[:-1]) if residuals else None,
            mid_block_additional_residual=residuals[-1] if residuals else None,
            return_dict=False,
        )[0]


class ControlCall(torch.nn.Module):
    """A ControlNet at scale 1 (the sampler scales its residuals after, as the model itself does inside): its down
    block residuals and mid block residual as one tuple."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, sample, step, text, cond):
        down, mid = self.net(
            sample, step, encoder_hidden_states=text, controlnet_cond=cond, conditioning_scale=1.0, return_dict=False
        )
        return (*down, mid)


WRAPPERS = {"unet": UNetCall, "controlnet": ControlCall}


class CompiledModels:
    """What outlives a run: the package store and the shapes held (a bench's timed paths share them)."""

    def __init__(self, bytes_per_shape: int, backend=None, root=None, bound: int | None = None):
        self.store = PackageStore(backend or AOTInductor(), root)
        self.held = HeldShapes(bound)
        self.bytes_per_shape = bytes_per_shape
        self.seconds: Counter = Counter()  # compile, load: over every run on this stack (the bench reads them)
        self.made: Counter = Counter()  # packages compiled, loaded
        self.speedup_key: str | None = None  # what the bench's measured speed-up for these models is kept by

    @classmethod
    def for_pipe(cls, pipe, **kwargs) -> CompiledModels:
        """For a pipeline's UNet and ControlNets: a shape holds at most a frozen copy of each."""
        modules = [pipe.unet, *pipe.controlnet.nets]
        size = sum(p.numel() * p.element_size() for m in modules for p in m.parameters())
        models = cls(size, **kwargs)
        models.speedup_key = keys.speedup_key(models.store.backend.name, pipe.unet)
        return models


class Denoisers:
    """One run's compiled calls (every style of the run shares it)."""

    def __init__(self, models: CompiledModels, choice: str, queue: int = 0):
        self.models = models
        self.policy = Policy(choice, queue)
        measured = models.store.speedup(models.speedup_key) if models.speedup_key else None
        if measured is not None:
            self.policy.speedup, self.policy.speedup_source = measured, "measured by the bench on this machine"
        self.shape: str | None = None  # the batch in progress's shape
        self.compiled = False  # whether it runs compiled
        self.eager_seconds = 0.0
        self.failed: dict[str, str] = {}  # package key -> why it runs eager
        # the stack's totals when this run began: the run's own are what they have grown by
        self.before = (Counter(models.seconds), Counter(models.made), len(models.held.released))
        self._described: dict[tuple, tuple] = {}  # per batch: (kind, module, input shapes) -> its keys

    @property
    def seconds(self) -> Counter:
        """This run's seconds compiling and loading."""
        return self.models.seconds - self.before[0]

    @property
    def made(self) -> Counter:
        """This run's packages compiled and loaded."""
        return self.models.made - self.before[1]

    def expect(self, frames: int) -> None:
        self.policy.queue += frames

    @contextmanager
    def batch(self, shape: str, frames: int):
        """A batch of `frames` of one shape: its calls compiled or eager, as the policy decides now."""
        self.shape, self.eager_seconds, self._described = shape, 0.0, {}
        self.compiled = self.policy.decide(shape, self.estimate)
        try:
            yield
        finally:
            self.policy.batch(shape, frames, None if self.compiled else self.eager_seconds)
            self.shape = None

    def call(self, kind: str, module: torch.nn.Module, args: tuple, eager):
        """`module` (kind unet or controlnet) on `args`: its package when the batch runs compiled, else `eager()`."""
        if self.shape is None:
            return eager()
        key, estimate_key, parameters, signature = self.describe(kind, module, args)
        self.policy.shapes[self.shape].packages.setdefault(key, (kind, parameters, signature, estimate_key))
        runner = self.runner(kind, key, module, args, estimate_key) if self.compiled else None
        if runner is None:
            start = time.perf_counter()
            out = eager()
            self.eager_seconds += time.perf_counter() - start
            return out
        return runner(*dense(args))

    def describe(self, kind: str, module, args: tuple) -> tuple[str, str, int, str]:
        """(package key, estimate key, parameters, input shapes) of a call: worked out at a batch's first call of
        each model and shape, not at every step (so weights switched between batches are seen)."""
        signature = keys.signature(args)
        found = self._described.get((kind, id(module), signature))
        if found is None:
            backend = self.models.store.backend.name
            parameters = sum(p.numel() for p in module.parameters())
            found = (
                keys.package_key(backend, kind, keys.fingerprint(module), signature),
                keys.estimate_key(backend, kind, parameters, signature),
                parameters,
                signature,
            )
            self._described[(kind, id(module), signature)] = found
        return found

    def runner(self, kind: str, key: str, module, args: tuple, estimate_key: str):
        """The held callable of `key`, else its package loaded or compiled (outside the stage's time); None when
        it cannot be compiled (the reason kept, the module eager from then on)."""
        if key in self.failed:
            return None
        held = self.models.held
        found = held.get(self.shape, key)
        if found is not None:
            return found
        held.make_room(self.shape, self.models.bytes_per_shape)
        forget(module)  # its package will run it: the eager layers' packs go before the compile (made again if eager)
        try:
            with untimed():
                made = self.models.store.get(key, WRAPPERS[kind](module).eval(), args, estimate_key)
        except Exception as exc:  # noqa: BLE001 - a model export cannot take, a compiler missing: run it eager
            self.failed[key] = f"{kind} {self.shape}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            return None
        self.models.seconds["compile" if made.how == "compiled" else "load"] += made.seconds
        self.models.made[made.how] += 1
        held.hold(self.shape, key, made.runner)
        return made.runner

    def estimate(self, shape) -> tuple[float, str]:
        """Seconds the shape's packages should take: loads for those on disk, measured compiles, else defaults."""
        seconds, sources = 0.0, set()
        for key, (_, parameters, _, estimate_key) in shape.packages.items():
            if self.models.store.has(key):
                seconds += self.models.store.path(key).stat().st_size / LOAD_RATE
                sources.add("on disk, loads only")
            elif (measured := self.models.store.estimate(estimate_key)) is not None:
                seconds += measured
                sources.add("measured on this machine")
            else:
                seconds += default_estimate(parameters)
                sources.add("default by model size")
        return seconds, " + ".join(sorted(sources))

    def report(self) -> dict:
        """The summary's `compile` block: the choice, each shape's decision and why, what compiling took."""
        return {
            "choice": self.policy.choice,
            "backend": self.models.store.backend.name,
            "shapes_held_at_most": self.models.held.bound,
            "compile_seconds": round(self.seconds["compile"], 2),
            "load_seconds": round(self.seconds["load"], 2),
            "packages": {"compiled": self.made["compiled"], "loaded": self.made["loaded"]},
            "shapes_released": len(self.models.held.released) - self.before[2],
            "speedup": {"weighed": round(self.policy.speedup, 3), "source": self.policy.speedup_source},
            "failed": sorted(self.failed.values()),
            "shapes": {name: shape_json(shape) for name, shape in self.policy.shapes.items()},
        }


def for_run(stack, choice: str) -> Denoisers | None:
    """A run's compiled calls on the CPU (the stack keeps its packages and held shapes across runs); None when
    nothing compiles here: --compile off, or a GPU (where `on` compiled the modules in place at load)."""
    from pipeline.models.compiled.backends import compiler

    if choice == "off" or stack.device.type != "cpu" or stack.pipe is None:
        return None
    if stack.compiled is None and compiler() is None:  # `on` was refused in the plan; `auto` stays eager
        return None
    if stack.compiled is None:
        stack.compiled = CompiledModels.for_pipe(stack.pipe)
    return Denoisers(stack.compiled, choice)
