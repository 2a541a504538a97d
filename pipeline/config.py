"""RunConfig: every option of a run, checked before any model loads."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pipeline.errors import UsageError
from pipeline.models.controls import CONTROLS, DEFAULT_CONTROLS
from pipeline.options import TransformOptions
from pipeline.stages.settings import GenerateSettings, SpeedOptions, with_fidelity
from styles import AUTO_ROOM, FIDELITY, MAX_REF_SCALE, ROOMS, Style, room_name
from styles.choice import check_distinct, chosen_styles

FORMATS = ("png", "jpeg", "webp")
FORMAT_ALIASES = {"jpg": "jpeg"}
MAX_VARIATIONS = 16
OUTPUT_SIZES = ("working", "original")
MAX_OUTPUT_SIDE = 16384


def settings_hash(settings: dict) -> str:
    """A short stable hash of everything that shapes a result (style, prompts, sizes, models, seed): the journal's
    `settings`, its test of whether an input is done."""
    canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass
class RunConfig:
    """What to run, on what, and how; `check()` raises UsageError for anything off."""

    inputs: list[str]
    out: str
    style: Style  # the first style; `styles` holds all of them (several per run render from one preprocessing)
    room: str = "living room"  # or "auto": found per photo by the preset's CLIP
    models: str = "sd15"
    size: int = 768
    seed: int = 0
    steps: int | None = None
    guidance_scale: float | None = None
    batch_size: int = 1
    device: str = "auto"
    dtype: str = "auto"  # --dtype as given: auto, fp32, bf16, fp16
    precision: str | None = None  # the format results are made in (fp32, bf16, fp16): set by the plan or engine
    gpu_price: float | None = None
    currency: str | None = None
    format: str = "png"
    workers: int = 4
    resume: bool = True
    overwrite: bool = False
    fail_fast: bool = False
    min_quality: float | None = None  # default: the style's
    retries: int = 2
    loras: list = field(default_factory=list)  # pipeline.models.lora.Lora, for every style
    preserve: set = field(default_factory=set)  # COCO labels whose objects keep their original pixels
    mask_dir: str | None = None  # the user's own keep masks, matched to inputs by relative path and stem
    save_controls: bool = False  # also write the input preview, depth, edges and object masks
    speed: SpeedOptions = field(default_factory=SpeedOptions)
    engine: str = "modomo"  # or "diffusers": one plain pipe() call per image, the bench's baseline
    more_styles: list[Style] = field(default_factory=list)
    manifest: str | None = None  # a .csv or .jsonl of jobs, one per row, in place of INPUTS
    job_styles: list[Style] = field(default_factory=list)  # styles only manifest rows name (set by the plan)
    job_keeps: bool = False  # some manifest row keeps objects or a mask region (set by the plan)
    job_parts: bool = False  # some manifest row keeps parts of the room (window, door...; set by the plan)
    name_template: str | None = None  # --name: output names from {stem}, {parent}, {style}, {room}, {seed}, {n}
    variations: int | None = None  # results per job; None: the style's `variations`, else 1
    output_size: str = "working"  # the results' size: working, original (the photo's), or a long side in pixels
    disclose: str | None = None  # --disclose: a visible label on every result; None: the style's, if any
    fast: str | None = None  # a few-step recipe (models.recipes) fused at load; None: the standard sampler
    sign_cert: str | None = None  # --sign-cert / --sign-key: C2PA content credentials on every result
    sign_key: str | None = None
    signing: Any = None  # pipeline.outputs.credentials.Credentials: the checked chain and key (set by the plan)
    fidelity: str | None = None  # --fidelity: loose, balanced, strict; None: each style's own, else balanced
    lines_off: str | None = None  # why the styles' lines control cannot run here (no MLSD ControlNet; set by the plan)
    style_ref: str | None = None  # --style-ref: a reference photo for every job's look (IP-Adapter)
    style_ref_scale: float | None = None  # --style-ref-scale; None: each style's `style_ref_scale`, else the default
    sets_by: str | None = None  # --sets-by parent: each folder of photos is a room set
    references: dict = field(default_factory=dict)  # where -> Reference: the command's and the styles' (the plan)
    set_anchors: dict = field(default_factory=dict)  # set name -> its anchor's key, as the output records (the plan)
    job_references: bool = False  # some manifest row has its own style_ref, or some input is in a room set (the plan)

    @classmethod
    def from_options(cls, options: TransformOptions) -> RunConfig:
        """The config `modomo transform`'s options describe (checked later, with the plan)."""
        from pipeline.models.lora import parse as parse_lora
        from pipeline.stages.preserve import resolve_labels

        o = options
        chosen = chosen_styles(o)
        return cls(
            inputs=list(o.inputs or []),
            manifest=str(o.manifest) if o.manifest else None,
            out=o.out,
            style=chosen[0],
            more_styles=chosen[1:],
            room=o.room,
            models=o.models,
            size=o.size,
            seed=o.seed,
            steps=o.steps,
            guidance_scale=o.guidance_scale,
            batch_size=o.batch_size,
            device=o.device,
            dtype=o.dtype,
            gpu_price=o.gpu_price,
            currency=o.currency,
            format=o.fmt,
            workers=o.workers,
            resume=o.resume,
            overwrite=o.overwrite,
            fail_fast=o.fail_fast,
            min_quality=o.min_quality,
            retries=o.retries,
            save_controls=o.save_controls or o.report or o.contact_sheet,
            loras=[parse_lora(text) for text in o.lora or []],
            preserve=resolve_labels(o.preserve) if o.preserve else set(),
            mask_dir=str(o.mask_dir) if o.mask_dir else None,
            name_template=o.name,
            variations=o.variations,
            output_size=o.output_size,
            fast=o.recipe,
            disclose=(o.disclose or "").strip() or None,
            sign_cert=str(o.sign_cert) if o.sign_cert else None,
            sign_key=str(o.sign_key) if o.sign_key else None,
            fidelity=o.fidelity,
            style_ref=o.style_ref or None,
            style_ref_scale=o.style_ref_scale,
            sets_by=o.sets_by,
        )

    @property
    def styles(self) -> list[Style]:
        return [self.style, *self.more_styles]

    def check(self) -> RunConfig:
        if not self.inputs and not self.manifest:
            raise UsageError("give at least one INPUT file or folder, or --manifest FILE")
        if self.inputs and self.manifest:
            raise UsageError("give INPUTS or --manifest, not both (a manifest names its inputs)")
        if room_name(self.room) is None:
            raise UsageError(f"--room {self.room!r}: choose auto or one of {', '.join(ROOMS)}")
        self.room = room_name(self.room)
        if not 64 <= self.size <= 2048:
            raise UsageError(f"--size must be between 64 and 2048, got {self.size}")
        if self.steps is not None and not 1 <= self.steps <= 200:
            raise UsageError(f"--steps must be between 1 and 200, got {self.steps}")
        if self.guidance_scale is not None and not 1.0 <= self.guidance_scale <= 30.0:
            raise UsageError(f"--guidance-scale must be between 1 and 30, got {self.guidance_scale}")
        if not 1 <= self.batch_size <= 64:
            raise UsageError(f"--batch-size must be between 1 and 64, got {self.batch_size}")
        if not 1 <= self.workers <= 64:
            raise UsageError(f"--workers must be between 1 and 64, got {self.workers}")
        self.format = format_name(self.format)
        if self.min_quality is not None and not 0.0 <= self.min_quality <= 1.0:
            raise UsageError(f"--min-quality must be between 0 and 1, got {self.min_quality}")
        if not 0 <= self.retries <= 10:
            raise UsageError(f"--retries must be between 0 and 10, got {self.retries}")
        if self.seed < 0:
            raise UsageError(f"--seed must be >= 0, got {self.seed}")
        if self.mask_dir is not None and not Path(self.mask_dir).is_dir():
            raise UsageError(f"--mask-dir {self.mask_dir}: no such folder")
        if self.variations is not None and not 1 <= self.variations <= MAX_VARIATIONS:
            raise UsageError(f"--variations must be between 1 and {MAX_VARIATIONS}, got {self.variations}")
        self.output_size = check_output_size(self.output_size)
        self.fast = self.fast_recipe()
        if self.fidelity is not None and self.fidelity not in FIDELITY:
            raise UsageError(f"--fidelity {self.fidelity!r}: choose one of {', '.join(FIDELITY)}")
        if self.style_ref_scale is not None and not 0.0 <= self.style_ref_scale <= MAX_REF_SCALE:
            raise UsageError(f"--style-ref-scale must be between 0 and {MAX_REF_SCALE}, got {self.style_ref_scale}")
        from pipeline.inputs.sets import check_sets_by

        self.sets_by = check_sets_by(self.sets_by)
        check_distinct(self.styles)
        return self

    @property
    def prompt_room(self) -> str:
        """The room in the run's own prompts: with auto, each photo gets its own; this is the fallback."""
        return "room" if self.room == AUTO_ROOM else self.room

    def fast_recipe(self) -> str | None:
        """The run's few-step recipe: --fast / --fast-recipe, else the styles' own (`fast = true`), which
        must agree (the LoRA is fused into the one UNet every style shares)."""
        from pipeline.models.recipes import DEFAULT_RECIPE, recipe

        if self.fast is not None:
            return recipe(self.fast).name
        wanted = {s.fast.enabled for s in self.styles}
        if len(wanted) > 1:
            raise UsageError(
                "some styles run fast (`fast = true`) and some do not; run them separately, or pass --fast for all"
            )
        if not wanted.pop():
            return None
        recipes = {s.fast.recipe for s in self.styles if s.fast.recipe}
        if len(recipes) > 1:
            raise UsageError(
                f"the styles name different fast recipes ({', '.join(sorted(recipes))}); pass --fast-recipe"
            )
        return recipes.pop() if recipes else DEFAULT_RECIPE

    def variations_for(self, style: Style, job=None) -> int:
        """Results per job in a style: the manifest row's, else --variations, else the style file's, else 1."""
        if job is not None and getattr(job, "variations", None):
            return job.variations
        return self.variations or style.variations or 1

    @property
    def most_variations(self) -> int:
        """The most results a job of the command's styles makes: photos per batch are divided by it."""
        return max(self.variations_for(style) for style in [*self.styles, *self.job_styles])

    @property
    def photos_per_batch(self) -> int:
        """Photos per batch, so that a batch's variations make about --batch-size images per model call
        (at least one photo: a job's variations always render in one call)."""
        return max(1, self.batch_size // self.most_variations)

    @property
    def output_long_side(self) -> int | str:
        """working, original, or the results' long side in pixels."""
        return int(self.output_size) if self.output_size.isdigit() else self.output_size

    def result_models(self, spec) -> dict:
        """The model ids that shape results: the preset's, plus the upscaler when results leave the working size."""
        ids = dict(spec.ids())
        if self.output_size != "working":
            ids["upscaler"] = spec.upscaler_id or "lanczos"
        return ids

    @property
    def long_side(self) -> int:
        """The working size, rounded to a multiple of 8 as the VAE needs."""
        return max(64, round(self.size / 8) * 8)

    def quality_threshold(self, style: Style | None = None) -> float:
        style = style or self.style
        return style.min_quality if self.min_quality is None else self.min_quality

    def generate_settings(self, style: Style | None = None) -> GenerateSettings:
        """A style's sampler settings; in fast mode, the recipe's steps and guidance and the style's [fast]
        overrides (options given on the command line come first either way); every control at the run's
        fidelity level."""
        s = style or self.style
        steps, guidance, eta = s.steps, s.guidance_scale, None
        controls = self.controls_of(s)
        if self.fast:
            from pipeline.models.recipes import RECIPES

            recipe, own = RECIPES[self.fast], s.fast
            steps, guidance, eta = own.steps or recipe.steps, own.guidance_scale or recipe.guidance_scale, recipe.eta
            controls = {name: getattr(own, name) or control for name, control in controls.items()}
        level = self.fidelity_of(s)
        shaped = [with_fidelity(c.scale, c.start, c.end, level) for c in controls.values()]
        return GenerateSettings(
            prompt=s.prompt_for(self.prompt_room),
            negative_prompt=s.negative_prompt,
            steps=self.steps or steps,
            guidance_scale=self.guidance_scale or guidance,
            controlnet_conditioning_scale=tuple(scale for scale, _, _ in shaped),
            control_guidance_start=tuple(start for _, start, _ in shaped),
            control_guidance_end=tuple(end for _, _, end in shaped),
            eta=eta,
            controls=tuple(controls),
        )

    def controls_of(self, style: Style) -> dict:
        """The style's controls that run here, by name, in CONTROLS order: those it gives a scale above 0 (a
        control a style file leaves out is off), lines only when the preset has the lines ControlNet."""
        own = {"depth": style.depth, "canny": style.canny}
        if style.lines is not None and self.lines_off is None:
            own["lines"] = style.lines
        return {name: control for name, control in own.items() if control.scale > 0}

    def load_options(self, **overrides):
        """How this run's models load (models.load.LoadOptions), made here only: its precision (decided by the
        plan for this machine), fast recipe, the ControlNets its styles steer with, the scene segmentation when
        parts of rooms are kept, the IP-Adapter when results follow a reference; `overrides` for what an engine
        decides otherwise (a Ray actor its own precision, the bench its layout)."""
        from pipeline.models.placement import LoadOptions

        chosen = {
            "dtype": self.precision or self.dtype,
            "fast": self.fast,
            "controls": self.controls_used,
            "segmenter": self.keeps_parts,
            "style_ref": self.uses_references,
        }
        return LoadOptions(**{**chosen, **overrides})

    @property
    def controls_used(self) -> tuple[str, ...]:
        """The controls some style of the run steers with, in CONTROLS order: the ControlNets a stack loads."""
        used = {name for s in [*self.styles, *self.job_styles] for name in self.generate_settings(s).controls}
        return tuple(name for name in CONTROLS if name in used)

    @property
    def keeps_parts(self) -> bool:
        """Whether --preserve, or a manifest row's, names parts of the room: the scene segmentation stage runs."""
        from pipeline.stages.parts import room_parts

        return bool(room_parts(self.preserve)) or self.job_parts

    def reference_source(self, style: Style) -> str | None:
        """Where a style's results take their look from, unless a manifest row or a room set says otherwise:
        --style-ref, else the style file's `style_ref`."""
        return self.style_ref or style.style_ref

    def reference_scale(self, style: Style) -> float:
        """How strongly a style's reference steers: --style-ref-scale, else the style's, else the default."""
        from pipeline.inputs.references import DEFAULT_SCALE

        if self.style_ref_scale is not None:
            return self.style_ref_scale
        return style.style_ref_scale if style.style_ref_scale is not None else DEFAULT_SCALE

    def reference_for(self, style: Style, job=None):
        """The reference a job in a style follows (a set's other photos follow their anchor instead): its manifest
        row's, else the command's, else the style file's; at the style's scale. None without one."""
        found = getattr(job, "reference", None) or self.references.get(self.reference_source(style))
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
        return self.fidelity or (style or self.style).fidelity or "balanced"

    def settings_json(self, style: Style | None = None) -> dict:
        """The settings of one style's results, as metadata and the summary show them."""
        style = style or self.style
        g = self.generate_settings(style)
        return {
            "size": self.long_side,
            "dtype": self.precision or self.dtype,
            "steps": g.steps,
            "guidance_scale": g.guidance_scale,
            "controlnet_conditioning_scale": list(g.controlnet_conditioning_scale),
            "control_guidance_start": list(g.control_guidance_start),
            "control_guidance_end": list(g.control_guidance_end),
            "canny_thresholds": [style.canny_low, style.canny_high],
            **({"controls": list(g.controls)} if g.controls != DEFAULT_CONTROLS else {}),
            **({"lines_min_length": style.lines_min_length} if "lines" in g.controls else {}),
            **({"fidelity": self.fidelity_of(style)} if self.fidelity_of(style) != "balanced" else {}),
            **self.reference_json(style),
            "batch_size": self.batch_size,
            "format": self.format,
            "style": style.name,
            "room": self.room,
            "base_seed": self.seed,
            "min_quality": self.quality_threshold(style),
            "retries": self.retries,
            "loras": [lora.to_json() for lora in self.loras_for(style)],
            "preserve": sorted(self.preserve),
            "mask_dir": self.mask_dir,
            **({"name": self.name_template} if self.name_template else {}),
            **({"variations": self.variations_for(style)} if self.variations_for(style) > 1 else {}),
            **({"output_size": self.output_long_side} if self.output_size != "working" else {}),
            **({"fast": self.fast_json()} if self.fast else {}),
            **({"disclose": self.disclosure(style)} if self.disclosure(style) else {}),
            **({"signed": "c2pa"} if self.signing is not None else {}),
        }

    def disclosure(self, style: Style | None = None) -> str | None:
        """The visible label of a style's results: --disclose, else the style file's `disclose`, else none."""
        return self.disclose or (style or self.style).disclose

    def fast_json(self) -> dict:
        from pipeline.models.recipes import RECIPES

        return RECIPES[self.fast].to_json()

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
        if self.more_styles:
            settings["by_style"] = {s.name: self.settings_json(s) for s in self.styles}
        return settings


def format_name(value: str) -> str:
    """--format in any case, jpg meaning jpeg; a usage error for any other."""
    text = str(value).strip().lower()
    text = FORMAT_ALIASES.get(text, text)
    if text not in FORMATS:
        raise UsageError(f"--format {value!r}: choose one of {', '.join(FORMATS)} (or jpg)")
    return text


def check_output_size(value: str) -> str:
    """--output-size: working, original, or a long side in pixels; a usage error otherwise."""
    text = str(value).strip().lower()
    if text in OUTPUT_SIZES:
        return text
    if text.isdigit() and 64 <= int(text) <= MAX_OUTPUT_SIDE:
        return str(int(text))
    raise UsageError(
        f"--output-size {value!r}: choose working, original, or a long side in pixels (64 to {MAX_OUTPUT_SIDE})"
    )
