"""RunConfig: the options of a run, checked before any model loads, and what is derived from them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pipeline.errors import UsageError
from pipeline.models.controls import CONTROLS, DEFAULT_CONTROLS
from pipeline.options import TransformOptions, check_output_size, compile_choice, format_name
from pipeline.stages.settings import GenerateSettings, SpeedOptions, with_fidelity
from styles import AUTO_ROOM, FIDELITY, MAX_REF_SCALE, ROOMS, Style, room_name
from styles.choice import check_distinct, check_mode, chosen_styles

MAX_VARIATIONS = 16


def settings_hash(settings: dict) -> str:
    """A short stable hash of everything that shapes a result (style, prompts, sizes, models, seed): the journal's
    `settings`, its test of whether an input is done."""
    canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RunConfig:
    """What to run, on what, and how: the user's options (frozen, checked, canonical) and what is derived from them
    and the preset, the machine and the inputs, each set once where it is derived (`config_for`, then the plan)."""

    options: TransformOptions  # as given: checked, in canonical form (the room's name, jpeg for jpg...)
    styles: tuple[Style, ...]  # --style's built-ins, then each --style-file's; several render from one preprocessing
    recipe: str | None = None  # the few-step recipe (models.recipes) fused at load: the options', else the styles'
    loras: tuple = ()  # pipeline.models.lora.Lora of --lora, for every style
    keep_labels: frozenset = frozenset()  # --preserve's COCO labels and parts, whose pixels stay the original's
    remove_labels: frozenset | None = None  # --remove's labels (declutter takes out only these); None: all movable
    precision: str | None = None  # the format results are made in (fp32, bf16, fp16): by the plan, or an engine's
    signing: Any = None  # pipeline.outputs.credentials.Credentials: the checked chain and key (by the plan)
    backend: str = "modomo"  # or "diffusers": one plain pipe() call per image, the bench's baseline
    speed: SpeedOptions = field(default_factory=SpeedOptions)  # the shortcuts (the bench switches them off)
    lines_off: str | None = None  # why the styles' lines control cannot run here (no MLSD ControlNet; the plan)
    references: Mapping = field(default_factory=dict)  # where -> Reference: the command's and the styles' (the plan)
    set_anchors: Mapping = field(default_factory=dict)  # set name -> its anchor's key, as the output records it
    job_styles: tuple[Style, ...] = ()  # styles only manifest rows name (the plan, from the inputs)
    job_keeps: bool = False  # some manifest row keeps objects or a mask region (the plan)
    job_parts: bool = False  # some manifest row keeps parts of the room (window, door...; the plan)
    job_references: bool = False  # some manifest row has its own style_ref, or some input is in a room set

    def with_options(self, **changes) -> RunConfig:
        """This config with some options changed (the bench's variants): the same derivations otherwise."""
        return replace(self, options=replace(self.options, **changes))

    @property
    def style(self) -> Style:
        """The first style: the summary's top-level settings are its."""
        return self.styles[0]

    @property
    def save_controls(self) -> bool:
        """Whether each photo's input preview and control maps are written: asked, or needed by the report (its
        control maps) or the contact sheet (its input)."""
        o = self.options
        return o.save_controls or o.report or o.contact_sheet

    @property
    def prompt_room(self) -> str:
        """The room in the run's own prompts: with auto, each photo gets its own; this is the fallback."""
        return "room" if self.options.room == AUTO_ROOM else self.options.room

    def variations_for(self, style: Style, job=None) -> int:
        """Results per job in a style: the manifest row's, else --variations, else the style file's, else 1."""
        if job is not None and getattr(job, "variations", None):
            return job.variations
        return self.options.variations or style.variations or 1

    @property
    def most_variations(self) -> int:
        """The most results a job of the command's styles makes: photos per batch are divided by it."""
        return max(self.variations_for(style) for style in [*self.styles, *self.job_styles])

    @property
    def photos_per_batch(self) -> int:
        """Photos per batch, so that a batch's variations make about --batch-size images per model call
        (at least one photo: a job's variations always render in one call)."""
        return max(1, self.options.batch_size // self.most_variations)

    @property
    def output_long_side(self) -> int | str:
        """working, original, or the results' long side in pixels."""
        return int(self.options.output_size) if self.options.output_size.isdigit() else self.options.output_size

    def result_models(self, spec) -> dict:
        """The model ids that shape results: the preset's, plus the upscaler when results leave the working size."""
        ids = dict(spec.ids())
        if self.options.output_size != "working":
            ids["upscaler"] = spec.upscaler_id or "lanczos"
        return ids

    @property
    def long_side(self) -> int:
        """The working size, rounded to a multiple of 8 as the VAE needs."""
        return max(64, round(self.options.size / 8) * 8)

    def quality_threshold(self, style: Style | None = None) -> float:
        style = style or self.style
        return style.min_quality if self.options.min_quality is None else self.options.min_quality

    def generate_settings(self, style: Style | None = None) -> GenerateSettings:
        """A style's sampler settings; in fast mode, the recipe's steps and guidance and the style's [fast]
        overrides (options given on the command line come first either way); every control at the run's
        fidelity level."""
        s = style or self.style
        steps, guidance, eta = s.steps, s.guidance_scale, None
        controls = self.controls_of(s)
        if self.recipe:
            from pipeline.models.recipes import RECIPES

            recipe, own = RECIPES[self.recipe], s.fast
            steps, guidance, eta = own.steps or recipe.steps, own.guidance_scale or recipe.guidance_scale, recipe.eta
            controls = {name: getattr(own, name, None) or control for name, control in controls.items()}
        level = self.fidelity_of(s)
        shaped = [with_fidelity(c.scale, c.start, c.end, level) for c in controls.values()]
        return GenerateSettings(
            prompt=s.prompt_for(self.prompt_room),
            negative_prompt=s.negative_prompt,
            steps=self.options.steps or steps,
            guidance_scale=self.options.guidance_scale or guidance,
            controlnet_conditioning_scale=tuple(scale for scale, _, _ in shaped),
            control_guidance_start=tuple(start for _, start, _ in shaped),
            control_guidance_end=tuple(end for _, _, end in shaped),
            eta=eta,
            controls=tuple(controls),
            strength=s.strength,
        )

    def controls_of(self, style: Style) -> dict:
        """The style's controls that run here, by name, in CONTROLS order: those it gives a scale above 0 (a
        control a style file leaves out is off), lines only when the preset has the lines ControlNet."""
        own = {"depth": style.depth, "canny": style.canny}
        if style.lines is not None and self.lines_off is None:
            own["lines"] = style.lines
        if style.inpaint is not None:
            own["inpaint"] = style.inpaint
        return {name: control for name, control in own.items() if control.scale > 0}

    def load_options(self, **overrides):
        """How this run's models load (models.load.LoadOptions), made here only: its precision (decided by the
        plan for this machine), fast recipe, the ControlNets its styles steer with, the scene segmentation when
        parts of rooms are kept, the IP-Adapter when results follow a reference; `overrides` for what an engine
        decides otherwise (a Ray actor its own precision, the bench its layout)."""
        from pipeline.models.placement import LoadOptions

        chosen = {
            "dtype": self.precision or self.options.dtype,
            "fast": self.recipe,
            "controls": self.controls_used,
            "segmenter": self.keeps_parts or self.declutters,
            "style_ref": self.uses_references,
            "lama": self.declutters,
        }
        return LoadOptions(**{**chosen, **overrides})

    @property
    def controls_used(self) -> tuple[str, ...]:
        """The controls some style of the run steers with, in CONTROLS order: the ControlNets a stack loads."""
        used = {name for s in [*self.styles, *self.job_styles] for name in self.generate_settings(s).controls}
        return tuple(name for name in CONTROLS if name in used)

    @property
    def declutters(self) -> bool:
        """Whether some job of the run may empty its room (--mode declutter, or a staging of a furnished photo) and
        paints into a region of it: LaMa, the inpaint ControlNet and the scene segmentation load, the detector finds
        people too, and the compositor puts the photo back around the region."""
        return any(s.mode != "restyle" for s in [*self.styles, *self.job_styles])

    @property
    def keeps_parts(self) -> bool:
        """Whether --preserve, or a manifest row's, names parts of the room: the scene segmentation stage runs."""
        from pipeline.stages.parts import room_parts

        return bool(room_parts(self.keep_labels)) or self.job_parts

    def reference_source(self, style: Style) -> str | None:
        """Where a style's results take their look from, unless a manifest row or a room set says otherwise:
        --style-ref, else the style file's `style_ref`."""
        return self.options.style_ref or style.style_ref

    def reference_scale(self, style: Style) -> float:
        """How strongly a style's reference steers: --style-ref-scale, else the style's, else the default."""
        from pipeline.inputs.references import DEFAULT_SCALE

        if self.options.style_ref_scale is not None:
            return self.options.style_ref_scale
        return style.style_ref_scale if style.style_ref_scale is not None else DEFAULT_SCALE

    def reference_for(self, style: Style, job=None):
        """The reference a job in a style follows (a set's other photos follow their anchor instead): its manifest
        row's, else the command's, else the style file's; at the style's scale. None without one."""
        found = getattr(job, "reference", None)
        if found is None and self.reference_source(style):
            found = self.references[self.reference_source(style)]  # read by the plan: never one left unread
        return replace(found, scale=self.reference_scale(style)) if found is not None else None

    @property
    def uses_references(self) -> bool:
        """Whether any job follows a reference: the IP-Adapter and its image encoder are loaded."""
        return self.job_references or any(self.reference_source(s) for s in [*self.styles, *self.job_styles])

    def reference_json(self, style: Style) -> dict:
        """What of the references shapes a style's results, for the settings and their hash: the style's own
        reference (digest and scale), or, where only rows or room sets bring references, the scale."""
        reference = self.references.get(self.reference_source(style) or "")
        if reference is not None:
            return {
                "style_ref": {
                    "source": reference.source,
                    "digest": reference.digest,
                    "scale": self.reference_scale(style),
                }
            }
        return {"style_ref_scale": self.reference_scale(style)} if self.job_references else {}

    def fidelity_of(self, style: Style | None = None) -> str:
        """How much a style's results may change: --fidelity, else the style file's, else balanced."""
        return self.options.fidelity or (style or self.style).fidelity or "balanced"

    def settings_json(self, style: Style | None = None) -> dict:
        """The settings of one style's results, as metadata and the summary show them."""
        style = style or self.style
        g = self.generate_settings(style)
        return {
            "size": self.long_side,
            "dtype": self.precision or self.options.dtype,
            "steps": g.steps,
            "guidance_scale": g.guidance_scale,
            "controlnet_conditioning_scale": list(g.controlnet_conditioning_scale),
            "control_guidance_start": list(g.control_guidance_start),
            "control_guidance_end": list(g.control_guidance_end),
            **self.mode_json(style),
            "canny_thresholds": [style.canny_low, style.canny_high],
            **({"controls": list(g.controls)} if g.controls != DEFAULT_CONTROLS else {}),
            **({"lines_min_length": style.lines_min_length} if "lines" in g.controls else {}),
            **({"fidelity": self.fidelity_of(style)} if self.fidelity_of(style) != "balanced" else {}),
            **self.reference_json(style),
            "batch_size": self.options.batch_size,
            "format": self.options.format,
            "style": style.name,
            "room": self.options.room,
            "base_seed": self.options.seed,
            "min_quality": self.quality_threshold(style),
            "retries": self.options.retries,
            "loras": [lora.to_json() for lora in self.loras_for(style)],
            "preserve": sorted(self.keep_labels),
            "mask_dir": str(self.options.mask_dir) if self.options.mask_dir else None,
            **({"name": self.options.name_template} if self.options.name_template else {}),
            **({"variations": self.variations_for(style)} if self.variations_for(style) > 1 else {}),
            **({"output_size": self.output_long_side} if self.options.output_size != "working" else {}),
            **({"fast": self.fast_json()} if self.recipe else {}),
            **({"disclose": self.disclosure(style)} if self.disclosure(style) else {}),
            **({"disclose_qr": True} if self.options.disclose_qr and self.disclosure(style) else {}),
            **({"originals": True} if self.options.publish_originals else {}),
            **({"signed": "c2pa"} if self.signing is not None else {}),
        }

    def mode_json(self, style: Style) -> dict:
        """What a mode other than restyle adds to a style's settings (nothing for a restyle: its settings, and so the
        hashes of results already made, stay as they were): the mode, how far the pass goes, what it takes out."""
        if style.mode == "restyle":
            return {}
        if style.mode == "stage":
            second = style.staging.second_strength if style.staging.second_pass else None
            return {"mode": style.mode, "strength": style.strength, "second_pass": second}
        taken = sorted(self.remove_labels) if self.remove_labels is not None else "movable"
        return {"mode": style.mode, "strength": style.strength, "remove": taken}

    def disclosure(self, style: Style | None = None) -> str | None:
        """The visible label of a style's results: --disclose, else the style file's `disclose`, else none."""
        return self.options.disclose or (style or self.style).disclose

    def fast_json(self) -> dict:
        from pipeline.models.recipes import RECIPES

        return RECIPES[self.recipe].to_json()

    def result_hash(self, style: Style, model_ids: dict) -> str:
        """The hash of everything that shapes this style's results (not the batch size): the journal's
        test of whether an input is done with these settings."""
        settings = self.generate_settings(style)
        shaping = {k: v for k, v in self.settings_json(style).items() if k != "batch_size"}
        if "style_ref" in shaping:  # the reference by its content: the same file named another way is the same
            shaping["style_ref"] = {k: v for k, v in shaping["style_ref"].items() if k != "source"}
        return settings_hash(
            {
                **shaping,
                "prompt": settings.prompt,
                "negative_prompt": settings.negative_prompt,
                "models": model_ids,
            }
        )

    def loras_for(self, style: Style) -> list:
        """The LoRAs a style's results use: the run's (--lora), then the style file's own."""
        return [*self.loras, *style.loras]

    def summary_settings(self) -> dict:
        """The summary's settings: the first style's at the top level, every style's under `by_style`."""
        settings = self.settings_json()
        settings["styles"] = [s.name for s in self.styles]
        if len(self.styles) > 1:
            settings["by_style"] = {s.name: self.settings_json(s) for s in self.styles}
        return settings


def config_for(options: TransformOptions, **derived) -> RunConfig:
    """The config the options describe, checked on their own (the plan then derives what the preset, the machine
    and the inputs decide); `derived` sets derived fields outright (the bench's, a test's own styles)."""
    from pipeline.models.lora import parse as parse_lora
    from pipeline.stages.preserve import resolve_labels

    options = checked(options)
    styles = tuple(derived.pop("styles", None) or chosen_styles(options))
    check_distinct(list(styles))
    made = {
        "recipe": run_recipe(options.recipe, styles),
        "loras": tuple(parse_lora(text) for text in options.lora or []),
        "keep_labels": frozenset(resolve_labels(options.preserve) if options.preserve else ()),
        "remove_labels": remove_labels(options.remove),
    }
    config = RunConfig(options, styles, **{**made, **derived})
    check_links(config)
    return config


def checked(o: TransformOptions) -> TransformOptions:
    """The options checked on their own, each a one-line usage error, and in canonical form (the room's own name,
    jpeg for jpg, a blank label as none): the options the run takes."""
    room = room_name(o.room if o.room is not None else "living room")
    if room is None:
        raise UsageError(f"--room {o.room!r}: choose auto or one of {', '.join(ROOMS)}")
    _check_ranges(o)
    if o.mask_dir is not None and not Path(o.mask_dir).is_dir():
        raise UsageError(f"--mask-dir {o.mask_dir}: no such folder")
    if o.fidelity is not None and o.fidelity not in FIDELITY:
        raise UsageError(f"--fidelity {o.fidelity!r}: choose one of {', '.join(FIDELITY)}")
    from pipeline.inputs.sets import check_sets_by

    return replace(
        o,
        mode=check_mode(o),
        room=room,
        format=format_name(o.format),
        compile=compile_choice(o.compile),
        output_size=check_output_size(o.output_size),
        sets_by=check_sets_by(o.sets_by),
        disclose=(o.disclose or "").strip() or None,
        style_ref=o.style_ref or None,
    )


def remove_labels(text: str | None) -> frozenset | None:
    """--remove's labels in canonical form (COCO labels, ADE20K classes, groups expanded); None: all movable."""
    if not text:
        return None
    from pipeline.stages.removal import resolve_remove

    return frozenset(resolve_remove(text))


ORIGINAL_URL, ORIGINAL = "{original_url}", "{original}"  # what a disclosure may name of the published original


def check_links(config: RunConfig) -> None:
    """A disclosure that links the published original (a placeholder, or --disclose-qr) needs one published, and
    --disclose-qr needs a disclosure to stand beside."""
    o = config.options
    labels = [config.disclosure(s) for s in config.styles]
    if o.disclose_qr and not any(labels):
        raise UsageError("--disclose-qr stands beside the disclosure: give --disclose TEXT (or a style's `disclose`)")
    linking = [link for link in (ORIGINAL_URL, ORIGINAL) if any(link in (label or "") for label in labels)]
    if (linking or o.disclose_qr) and not o.publish_originals:
        what = " and ".join([*linking, *(["--disclose-qr"] if o.disclose_qr else [])])
        raise UsageError(f"{what} names the published original: add --publish-originals")


RANGES = {  # option: (low, high, its flag); None for no bound
    "size": (64, 2048, "--size"),
    "steps": (1, 200, "--steps"),
    "guidance_scale": (1.0, 30.0, "--guidance-scale"),
    "batch_size": (1, 64, "--batch-size"),
    "workers": (1, 64, "--workers"),
    "min_quality": (0.0, 1.0, "--min-quality"),
    "retries": (0, 10, "--retries"),
    "seed": (0, None, "--seed"),
    "variations": (1, MAX_VARIATIONS, "--variations"),
    "style_ref_scale": (0.0, MAX_REF_SCALE, "--style-ref-scale"),
}


def _check_ranges(o: TransformOptions) -> None:
    for name, (low, high, flag) in RANGES.items():
        value = getattr(o, name)
        if value is None:
            continue
        if high is None and value < low:
            raise UsageError(f"{flag} must be >= {low}, got {value}")
        if high is not None and not low <= value <= high:
            raise UsageError(f"{flag} must be between {low:g} and {high:g}, got {value}")


def run_recipe(asked: str | None, styles) -> str | None:
    """The run's few-step recipe: --fast / --fast-recipe, else the styles' own (`fast = true`), which must agree
    (the LoRA is fused into the one UNet every style shares)."""
    from pipeline.models.recipes import DEFAULT_RECIPE, recipe

    if asked is not None:
        return recipe(asked).name
    wanted = {s.fast.enabled for s in styles}
    if len(wanted) > 1:
        raise UsageError(
            "some styles run fast (`fast = true`) and some do not; run them separately, or pass --fast for all"
        )
    if not wanted.pop():
        return None
    recipes = {s.fast.recipe for s in styles if s.fast.recipe}
    if len(recipes) > 1:
        raise UsageError(f"the styles name different fast recipes ({', '.join(sorted(recipes))}); pass --fast-recipe")
    return recipes.pop() if recipes else DEFAULT_RECIPE
