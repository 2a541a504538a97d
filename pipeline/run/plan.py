"""The run, built once before any model loads: options checked, output ready, inputs listed and sharded,
the model preset chosen (with its checkpoint). Every engine takes a RunPlan and returns a RunResult."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from pipeline.config import ORIGINAL_URL, RunConfig, config_for
from pipeline.errors import UsageError
from pipeline.frames import Item
from pipeline.inputs.references import ReferenceReader
from pipeline.inputs.sources import collect_inputs
from pipeline.models.catalog import resolve
from pipeline.models.inventory import Inventory, inventory
from pipeline.models.placement import pick_device
from pipeline.models.precision import resolve as resolve_dtype
from pipeline.models.presets import ModelSpec
from pipeline.options import DEFAULT_STYLE, TransformOptions
from pipeline.outputs.journal import Journal
from pipeline.outputs.names import original_name
from pipeline.outputs.signing import load_signing
from pipeline.outputs.sinks import LocalSink, R2Sink, open_sink
from pipeline.r2 import Remote
from pipeline.run.cost import resolve_price
from pipeline.run.fit import (
    check_adapter,
    check_compile,
    check_declutter,
    check_fast,
    check_lines,
    check_parts,
    check_pass_steps,
    check_room,
    check_upscaler,
    default_room,
)
from pipeline.run.shards import Shard
from styles import AUTO_ROOM, EMPTY, Style, load_mode, load_style
from styles.choice import chosen_styles

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
    devices: list[str] = field(default_factory=list)  # --devices, parsed
    worker_argv: list[str] = field(default_factory=list)  # the command line each device worker repeats
    journal: Journal | None = None  # the output's journal: read once, by whichever part asks first
    warnings: list[str] = field(default_factory=list)  # one line each, shown before the run
    _stems: dict = field(default_factory=dict, repr=False)  # per style, every input's output stem (decided once)

    def stems(self, style: str) -> dict[Item, str]:
        """Every input's output stem in a style, decided on the whole input list (as a Runner decides them)."""
        if style not in self._stems:
            from pipeline.outputs.names import stems_for

            count = {item: len(self.styles_for(item)) for item in self.everything}
            self._stems[style] = stems_for(self.everything, style, self.config, count.get)
        return self._stems[style]

    def result_hashes(self) -> dict[str, str]:
        """Per style, the hash of everything that shapes its results: what the journal is matched on."""
        styles = [*self.config.styles, *self.config.job_styles]
        return {style.name: self.config.result_hash(style, self.config.result_models(self.spec)) for style in styles}

    def styles_for(self, item: Item) -> list[str]:
        """The styles an input is restyled in: its manifest row's, else the command's."""
        job = item.job
        if job is not None and job.styles:  # a failed row too: it is reported under its own style(s)
            return list(job.styles)
        return [style.name for style in self.config.styles]


def with_checkpoint(spec: ModelSpec, option: Path | None, styles) -> ModelSpec:
    """The preset with --checkpoint, or the styles' own `checkpoint` when they agree on one."""
    from pipeline.models.checkpoint import check

    wanted = {s.checkpoint for s in styles if s.checkpoint}
    if option is None and len(wanted) > 1:
        raise UsageError("the styles name different checkpoints; run them separately or pass --checkpoint")
    file = option or (wanted.pop() if wanted else None)
    if file is None:
        return spec
    if spec.builder:
        raise UsageError(f"--checkpoint needs a preset with configs on disk or in the cache, not {spec.name}")
    return replace(spec, checkpoint=str(check(file)))


def check_engine(options: TransformOptions) -> str:
    """The engine the options ask for (modomo, devices or ray), or a one-line usage error for a combination that
    has none."""
    engine, actors = options.engine, options.actors
    several = "--devices" if options.devices else "--engine ray" if engine == "ray" else None
    if several and options.fail_fast:
        raise UsageError(
            f"--fail-fast stops one process at its first failure; {several} runs several: run without one of them"
        )
    if several and options.device != "auto":
        raise UsageError(
            f"--device {options.device} with {several}: the device of each worker or actor is set by --devices or "
            "by Ray"
        )
    if engine not in ENGINES:
        raise UsageError(f"--engine {engine!r}: choose modomo or ray")
    if options.devices and engine == "ray":
        raise UsageError("--devices and --engine ray: Ray places its own actors; choose one")
    if actors is not None and engine != "ray":
        raise UsageError("--actors is for --engine ray")
    if actors is not None and actors < 1:
        raise UsageError(f"--actors must be >= 1, got {actors}")
    return "devices" if options.devices else engine


def build_plan(options: TransformOptions, worker_argv: list[str] | None = None) -> RunPlan:
    """The plan `modomo transform`'s options describe, everything that can be checked without models checked in the
    order a user would fix it; `worker_argv` is the command line each device worker repeats."""
    from pipeline.run.shards import from_environment, parse

    if not options.inputs and not options.manifest:
        raise UsageError("give at least one INPUT file or folder, or --manifest FILE")
    if options.inputs and options.manifest:
        raise UsageError("give INPUTS or --manifest, not both (a manifest names its inputs)")
    shard = parse(options.shard) if options.shard else from_environment()
    spec, stock, config, warnings = model_plan(options)
    engine = check_engine(options)
    devices = parse_devices(options.devices) if options.devices else []
    check_parts(config, stock)
    remote = Remote(pool_size=options.workers * 2 + 2)
    reader = ReferenceReader(remote)
    config = with_references(config, stock, reader)  # before anything is written
    sink = open_sink(options.out, remote)
    check_original_url(config, sink)  # before the output is made
    sink.prepare()
    journal = Journal(sink)
    if options.sets_by or options.manifest:  # a set keeps the anchor the output has, whatever was added since
        from pipeline.inputs.sets import recorded_anchors

        config = replace(config, set_anchors=recorded_anchors(journal.lines()))
    everything, config = list_inputs(config, stock, remote, warnings.append, reader)
    if not everything:
        raise UsageError(f"no images found in {', '.join(options.inputs or [str(options.manifest)])}")
    check_parts(config, stock)
    check_adapter(config, stock)
    config = replace(config, lines_off=check_lines(config, stock, warnings))
    check_output_names(config, everything)
    check_original_url(config, sink)  # the styles only manifest rows name too
    items = [item for item in everything if shard is None or shard.owns(item.group_key)]  # a room set stays whole
    return RunPlan(config, spec, sink, remote, everything, items, shard, engine, devices,
                   list(worker_argv or []), journal, warnings)  # fmt: skip


def model_plan(options: TransformOptions) -> tuple[ModelSpec, Inventory, RunConfig, list[str]]:
    """The part of a plan that needs no inputs and no output (the bench's whole plan): the preset with its
    checkpoint, what of it is on this machine (asked once, offline), the config checked against it, warnings."""
    styles = chosen_styles(options)
    spec = with_checkpoint(resolve(options.models), options.checkpoint, styles)
    stock = inventory(spec)
    config, warnings = checked_config(options, styles, stock)
    return spec, stock, config, warnings


def with_references(config: RunConfig, stock: Inventory, reader) -> RunConfig:
    """The config with the command's and the styles' references read (a usage error naming one that cannot be),
    and the preset's IP-Adapter checked when any job follows one."""
    config = replace(config, references=read_references(config, reader))
    check_adapter(config, stock)
    return config


def checked_config(options: TransformOptions, styles, stock: Inventory) -> tuple[RunConfig, list[str]]:
    """The options checked against each other and the preset (the room, the precision, the signing identity, the
    working size, the upscaler, fast mode): the run's config and the warnings to show before the run."""
    warnings: list[str] = []
    if options.room is None:  # not given: found per photo when the preset can, else the old default
        room, warnings = default_room(stock)
        options = replace(options, room=room)
    config = config_for(options, styles=styles)
    if options.name_template:  # before the output is made
        from pipeline.outputs.names import check_template

        check_template(options.name_template)
    # auto by this device; a --devices worker or a Ray actor decides by its own
    device = pick_device(options.device)
    precision = resolve_dtype(options.dtype, device)
    check_compile(config, device)
    signing = load_signing(options.sign_cert, options.sign_key)  # read and tried once
    resolve_price(None, options.gpu_price, options.currency)  # the price options, before anything is written
    config = replace(config, precision=precision, signing=signing)
    if config.long_side != options.size:
        warnings.append(
            f"--size {options.size} is not a multiple of 8 (the VAE's step): the working size is "
            f"{config.long_side} px on the long side"
        )
    check_room(config, stock)
    check_upscaler(config, stock)
    check_fast(config, stock)
    check_declutter(config, stock)
    check_pass_steps(config)
    return config, warnings


def check_original_url(config: RunConfig, sink) -> None:
    """A disclosure naming `{original_url}` needs the output to have public addresses: R2 with CDN_DOMAIN."""
    linked = any(ORIGINAL_URL in (config.disclosure(s) or "") for s in [*config.styles, *config.job_styles])
    if linked and not sink.public_url(original_name("x")):
        raise UsageError(
            "--disclose {original_url}: this output has no public address (an r2:// --out with CDN_DOMAIN set "
            "has); use {original}, the original's path in the output"
        )


def check_output_names(config: RunConfig, everything: list[Item]) -> None:
    """A --name template's names, checked on the whole input list: two jobs never share one."""
    if not config.options.name_template:  # its template was checked with the options, before the output was made
        return
    from pipeline.outputs.names import check_unique

    names = [s.name for s in config.styles]
    check_unique(
        everything,
        config,
        lambda item: (
            list(item.job.styles) if item.job is not None and item.job.styles and item.job.error is None else names
        ),
    )


def read_references(config: RunConfig, reader) -> dict:
    """The command's and the styles' references (those the config has, and any new), each read and decoded once; a
    usage error naming the one that cannot be (a local file or an R2 object, before any model loads)."""
    references = dict(config.references)
    for style in [*config.styles, *config.job_styles]:
        where = config.reference_source(style)
        if where and where not in references:
            what = "--style-ref" if where == config.options.style_ref else f"style {style.name}: style_ref"
            references[where] = reader.option(where, config.reference_scale(style), what)
    return references


def list_inputs(
    config: RunConfig, stock: Inventory, remote: Remote, warn=None, reader=None
) -> tuple[list[Item], RunConfig]:
    """The run's inputs: INPUTS, or the manifest's jobs (rows that need what the preset lacks failed), with their
    room sets and the rows' references; and the config with what the inputs bring (the styles only rows name, their
    references). The same list wherever it is made: the driver, a device worker, a Ray actor."""
    from pipeline.inputs.sets import assign_sets

    options = config.options
    if options.manifest:
        found, config = manifest_jobs(config, stock, remote, warn)
    else:
        found = collect_inputs(options.inputs, remote)
    items = assign_sets(found, options.sets_by, config.set_anchors)
    if options.manifest:  # the styles only rows name may bring references too
        reader = reader or ReferenceReader(remote)
        config = replace(config, references=read_references(config, reader))
        items = row_references(items, reader, warn)
    jobs_follow = any(item.group for item in items) or any(
        item.job is not None and item.job.reference is not None for item in items
    )
    return items, replace(config, job_references=jobs_follow)


def row_references(items: list[Item], reader, warn=None) -> list[Item]:
    """Each manifest row's `style_ref`, read once per distinct file (in parallel); a row whose reference cannot
    be read fails alone, naming it. A row's reference is part of its version: a changed file redoes the rows that
    name it. A room set's later photo follows its anchor's result: its row may repeat the set's own reference (the
    same content), and is then the row without it; another reference fails that row alone."""
    from pipeline.inputs.references import row_reference, set_row_reference

    reader.preload(i.job.style_ref for i in items if i.job.style_ref and not i.job.error)
    marked = [item if item.anchor else row_reference(item, reader) for item in items]
    anchors = {item.identity: item for item in marked if item.group and not item.anchor}
    taken = {item.identity: item.job.line for item in marked}
    result = []
    for item in marked:
        followed = set_row_reference(item, anchors.get(item.anchor), reader) if item.anchor else item
        if followed.identity != item.identity:  # the row less its repeat: it may be another row already
            if followed.identity in taken:
                if warn is not None:
                    warn(f"manifest line {item.job.line} repeats line {taken[followed.identity]}: one job")
                continue
            taken[followed.identity] = item.job.line
        result.append(followed)
    return result


def manifest_jobs(config: RunConfig, stock: Inventory, remote: Remote, warn=None) -> tuple[list[Item], RunConfig]:
    """The manifest's rows as items, and the config with the styles only rows name and what rows keep (see
    `list_inputs`)."""
    from pipeline.inputs.manifest import manifest_items
    from pipeline.stages.parts import room_parts
    from pipeline.stages.preserve import resolve_labels
    from pipeline.stages.removal import resolve_remove

    named = {s.name for s in config.styles}
    manifest = config.options.manifest
    items = manifest_items(
        str(manifest), remote, lambda name: name in named or _known_style(name), resolve_labels, warn, resolve_remove
    )
    items = [restyled(item, config) for item in items]
    modes = style_modes(items, config)
    wanted = sorted({name for item in items for name in item.job.styles or ()} - named)
    config = replace(
        config,
        job_styles=tuple(job_style(name, modes[name]) for name in wanted),
        job_keeps=any(item.job.preserve or item.job.mask for item in items),
        job_parts=any(room_parts(item.job.preserve) for item in items if item.job.preserve),
    )
    check_pass_steps(config)  # the rows' own styles' passes too
    if not stock.has("clip"):
        items = [
            _needs(item, "room auto needs the preset's CLIP") if item.job.room == AUTO_ROOM else item for item in items
        ]
    check_names(items, manifest)
    return items, config


def style_modes(items: list[Item], config: RunConfig) -> dict[str, str]:
    """Each style the run makes, by name, and its mode: a row's mode, else the command's. Results are known by their
    style's name (room.boho.png), so one style both restyled and staged in one run is refused in one line."""
    modes: dict[str, set[str]] = {style.name: {style.mode} for style in config.styles}
    for item in items:
        mode = item.job.mode or config.options.chosen_mode
        for name in item.job.styles or [style.name for style in config.styles]:
            modes.setdefault(name, set()).add(mode)
    for name, asked in modes.items():
        if len(asked) > 1:
            raise UsageError(
                f"style {name!r} is asked for both as a {' and as a '.join(sorted(asked))} in one run, and both "
                f"results would be named {name}; run them separately (into two outputs)"
            )
    return {name: asked.pop() for name, asked in modes.items()}


def job_style(name: str, mode: str) -> Style:
    """A style only manifest rows name, in its rows' mode: declutter's recipe (`empty`), a staging, a restyle."""
    if name == EMPTY:
        return load_mode("declutter")
    if mode == "stage":
        from styles.staging import staged

        return staged(load_style(name))
    return load_style(name)


def restyled(item: Item, config: RunConfig) -> Item:
    """A row that asks for a restyle with no style of its own, under a command of another mode: the default style
    (the command's styles are the other mode's own)."""
    job = item.job
    if job.mode == "restyle" and not job.styles and config.options.chosen_mode != "restyle":
        return replace(item, job=replace(job, styles=(DEFAULT_STYLE,)))
    return item


def _known_style(name: str) -> bool:
    try:
        load_style(name)
    except UsageError:
        return False
    return True


def _needs(item: Item, reason: str) -> Item:
    if item.job.error:
        return item
    return replace(item, job=replace(item.job, error=item.job.fail(reason)))


def check_names(items: list[Item], manifest) -> None:
    """Manifest `name` cells that two rows share would overwrite each other: refused, naming the lines."""
    seen: dict[str, int] = {}
    for item in items:
        job = item.job
        if job is None or not job.name:
            continue
        if job.name in seen:
            raise UsageError(
                f"--manifest {manifest}: lines {seen[job.name]} and {job.line} both name their output {job.name!r}"
            )
        seen[job.name] = job.line


def _cuda_index(part: str, text: str) -> int:
    number = part.removeprefix("cuda:")
    if not number.isdigit():
        raise UsageError(f"--devices {text!r}: {part!r} is not a device; use all, GPU numbers (0,1), cuda:N or cpu")
    return int(number)


def parse_devices(text: str) -> list[str]:
    """`all`, `0,1,2,3`, `cuda:0,cuda:1`, or `cpu,cpu` (several CPU workers); anything else is a usage error."""
    import torch

    count = torch.cuda.device_count()
    if text.strip() == "all":
        if count == 0:
            raise UsageError("--devices all: no CUDA GPU on this machine")
        return [f"cuda:{i}" for i in range(count)]
    parts = [p.strip().lower() for p in text.split(",") if p.strip()]
    if not parts:
        raise UsageError(f"--devices {text!r}: name at least one device")
    devices = []
    for part in parts:
        if part == "cpu":
            devices.append("cpu")
            continue
        index = _cuda_index(part, text)
        if index >= count:
            raise UsageError(f"--devices: cuda:{index} is not on this machine ({count} GPU(s))")
        devices.append(f"cuda:{index}")
    gpus = [d for d in devices if d != "cpu"]
    if len(set(gpus)) != len(gpus):
        raise UsageError(f"--devices {text!r}: names a GPU twice")
    return devices
