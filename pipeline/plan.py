"""The run, built once before any model loads: options checked, output ready, inputs listed and sharded,
the model preset chosen (with its checkpoint). Every engine takes a RunPlan and returns a RunResult."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from pipeline.config import RunConfig
from pipeline.errors import UsageError
from pipeline.frames import Item
from pipeline.models.presets import ModelSpec, resolve
from pipeline.r2 import Remote
from pipeline.shards import Shard
from pipeline.sinks import LocalSink, R2Sink, open_sink
from pipeline.sources import collect_inputs

ENGINES = ("modomo", "ray")


@dataclass
class RunPlan:
    """What to run and where: the same plan means the same results under every engine."""

    config: RunConfig
    spec: ModelSpec
    sink: LocalSink | R2Sink
    remote: Remote
    everything: list[Item]  # the whole input list: output names are decided on it
    items: list[Item]  # this shard's inputs
    shard: Shard | None = None
    engine: str = "modomo"  # modomo (this process), devices (a worker per device), ray
    devices: list[str] = field(default_factory=list)
    actors: int | None = None
    report: bool = False
    worker_argv: list[str] = field(default_factory=list)  # the command line each device worker repeats

    def result_hashes(self) -> dict[str, str]:
        """Per style, the hash of everything that shapes its results: what the journal is matched on."""
        return {style.name: self.config.result_hash(style, self.spec.ids()) for style in self.config.styles}


def with_checkpoint(spec: ModelSpec, option: Path | None, styles) -> ModelSpec:
    """The preset with --checkpoint, or the styles' own `checkpoint` when they agree on one."""
    from pipeline.models.checkpoint import check

    wanted = {s.checkpoint for s in styles if s.checkpoint}
    if option is None and len(wanted) > 1:
        raise UsageError("the styles name different checkpoints; run them separately or pass --checkpoint")
    file = option or (wanted.pop() if wanted else None)
    if file is None:
        return spec
    if spec.random_weights and not spec.local:
        raise UsageError(f"--checkpoint needs a preset with configs on disk or in the cache, not {spec.name}")
    return replace(spec, checkpoint=str(check(file)))


def check_engine(engine: str, devices: str | None, actors: int | None, config: RunConfig) -> str:
    """The engine the options ask for, or a one-line usage error for a combination that has none."""
    several = "--devices" if devices else "--engine ray" if engine == "ray" else None
    if several and config.fail_fast:
        raise UsageError(f"--fail-fast stops one process at its first failure; {several} runs several: "
                         "run without one of them")
    if several and config.device != "auto":
        raise UsageError(f"--device {config.device} with {several}: the device of each worker or actor is set "
                         "by --devices or by Ray")
    if engine not in ENGINES:
        raise UsageError(f"--engine {engine!r}: choose modomo or ray")
    if devices and engine == "ray":
        raise UsageError("--devices and --engine ray: Ray places its own actors; choose one")
    if actors is not None and engine != "ray":
        raise UsageError("--actors is for --engine ray")
    if actors is not None and actors < 1:
        raise UsageError(f"--actors must be >= 1, got {actors}")
    return "devices" if devices else engine


def build_plan(config: RunConfig, shard: Shard | None = None, devices: str | None = None, engine: str = "modomo",
               actors: int | None = None, report: bool = False, checkpoint: Path | None = None,
               worker_argv: list[str] | None = None) -> RunPlan:
    """Check everything that can be checked without models, in the order a user would fix it."""
    from pipeline.engines.devices import parse_devices

    config.check()
    chosen = check_engine(engine, devices, actors, config)
    device_list = parse_devices(devices) if devices else []
    spec = with_checkpoint(resolve(config.models), checkpoint, config.styles)
    remote = Remote(pool_size=config.workers * 2 + 2)
    sink = open_sink(config.out, remote)
    sink.prepare()
    everything = collect_inputs(config.inputs, remote)
    if not everything:
        raise UsageError(f"no images found in {', '.join(config.inputs)}")
    items = [item for item in everything if shard is None or shard.owns(item.identity)]
    return RunPlan(config, spec, sink, remote, everything, items, shard, chosen, device_list, actors, report,
                   list(worker_argv or []))
