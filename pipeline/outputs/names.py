"""`--name TEMPLATE`: output names from a template of `{stem}`, `{parent}`, `{root}`, `{style}`, `{room}`, `{seed}`,
`{n}`.

`{stem}` is the input's file name without extension, `{parent}` its folder inside the input root
(empty at the top: an empty field's folder level is left out, so `{parent}/{stem}` names a photo at the top
`room`), `{root}` the input root's own folder name (`photos` for photos/, or an R2 prefix's last part: what
tells two input folders' `room.jpg` apart), `{n}` the variation number (--variations; 1 when a job makes
one result; without `{n}`, variations are named `.v1` ... `.vN` after the stem). A name may hold
folders (`{parent}/{style}/{stem}`). Names that two jobs would share, or that would leave the
output, are refused before any model loads, naming the inputs; so is a template ending in an image
extension (`{stem}.png`): --format decides the extension.

The control maps a photo's styles share are named after the photo, never a style or a template:
`<photo>.input.jpg`, `<photo>.depth.png`, `<photo>.masks.jpg` (`photo_stems`; each style's own edge and
line maps follow its result: `room.boho.edges.png`). So no style may be named input, depth or masks
(`styles.check_name`), and no --name may write a job as another photo's stem or as a map's (`check_maps`).
"""

from __future__ import annotations

import string
from pathlib import PurePosixPath

from pipeline.errors import UsageError
from pipeline.frames import Item
from pipeline.inputs.seeds import item_seed
from pipeline.outputs.sinks import output_stems, root_name
from styles import AUTO_ROOM, PHOTO_KINDS

FIELDS = ("stem", "parent", "root", "style", "room", "seed", "n")
# A photo's own files by kind (styles.PHOTO_KINDS, the names no style may take): format, suffix after its stem.
PHOTO_MAPS = {"input": ("jpeg", ".input.jpg"), "depth": ("png", ".depth.png"), "masks": ("jpeg", ".masks.jpg")}
ORIGINALS = "originals/"  # --publish-originals: each input under the output's root, named after the photo


def original_name(photo_stem: str) -> str:
    """Where a photo's published original goes in the output: lossless PNG (its decoded pixels, unchanged)."""
    return f"{ORIGINALS}{photo_stem}.png"


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".avif")


def check_template(template: str) -> str:
    """The template, or a usage error naming what is wrong with it."""
    try:
        used = [field for _, field, spec, _ in string.Formatter().parse(template) if field is not None]
    except ValueError as exc:
        raise UsageError(f"--name {template!r}: {exc}") from None
    unknown = [f for f in used if f not in FIELDS]
    if unknown:
        fields = ", ".join(f"{{{f}}}" for f in FIELDS)
        raise UsageError(f"--name {template!r}: unknown field {{{unknown[0]}}}; use {fields}")
    if not used:
        raise UsageError(f"--name {template!r}: use at least one field such as {{stem}}, or every input shares a name")
    if template.startswith("/"):
        raise UsageError(f"--name {template!r}: a name is a path inside --out; leave out the leading '/'")
    extension = PurePosixPath(template).suffix
    if extension.lower() in IMAGE_EXTENSIONS:
        raise UsageError(f"--name {template!r}: leave out the extension {extension!r}; --format decides it")
    return template


def render(template: str, item: Item, style: str, room: str, seed: int, n: int = 1) -> str:
    """One output stem from the template; a usage error when it would leave the output."""
    key = PurePosixPath(item.key)
    parent = key.parent.as_posix()
    parent = "" if parent == "." else parent
    name = template.format(stem=key.stem, parent=parent, root=root_name(item), style=style, room=room, seed=seed, n=n)
    parts = [p for p in name.split("/") if p]  # an empty field's level left out
    if not parts or any(p in (".", "..") for p in parts):
        raise UsageError(f"--name {template!r}: {item.display} would be written as {name!r}, outside the output")
    return "/".join(parts)


def _fields(item: Item, config) -> tuple[str, int]:
    """The room and seed a template names for an input: its manifest row's, else the command's."""
    job = item.job
    room = job.room if job is not None and job.room else config.options.room
    return room, item_seed(config.options.seed, item)


def templated(item: Item, config) -> bool:
    """Whether the input's names come from --name (a manifest row's own name comes first)."""
    return bool(config.options.name_template) and not (item.job is not None and item.job.name)


def stems_for(items: list[Item], style: str, config, styles_of=lambda item: 1) -> dict[Item, str]:
    """Every input's output stem in one style: a manifest row's name, else the template, else the default."""
    stems = output_stems(items, style, styles_of)
    for item in items:
        if templated(item, config):
            stems[item] = render(config.options.name_template, item, style, *_fields(item, config))
    return stems


def photo_stems(items: list[Item]) -> dict[Item, str]:
    """Each input's own stem (`dir/room`): its shared control maps are `<stem>.input.jpg`, `<stem>.depth.png` and
    `<stem>.masks.jpg`, whichever styles, names or shards write them."""
    return output_stems(items, None)


def variation_stem(config, item: Item, style: str, stem: str, n: int, count: int) -> str:
    """The stem of a job's variation n of `count`: the job's stem when it makes one result; the template
    rendered with {n} when it has it; else the job's stem with `.v1` ... `.vN`."""
    if count == 1:
        return stem
    if templated(item, config) and "{n}" in config.options.name_template:
        return render(config.options.name_template, item, style, *_fields(item, config), n=n)
    return f"{stem}.v{n}"


def check_unique(items: list[Item], config, styles_for) -> None:
    """Refuse names that two jobs would share in this run (each job in its own styles), naming both."""
    if not config.options.name_template:
        return
    if "{room}" in config.options.name_template and any(
        (item.job.room if item.job is not None and item.job.room else config.options.room) == AUTO_ROOM
        for item in items
    ):
        raise UsageError(
            f"--name {config.options.name_template!r}: {{room}} is only known after --room auto has "
            "looked at each photo; give --room, or leave {room} out"
        )
    styles = {name for item in items for name in styles_for(item)}
    counts = {item: len(styles_for(item)) for item in items}
    names = {style: stems_for(items, style, config, counts.get) for style in sorted(styles)}
    taken: dict[str, str] = {}
    for item in items:
        for style in styles_for(item):
            stem, label = names[style][item], f"{item.display} ({style})"
            if stem in taken:
                template = config.options.name_template
                raise UsageError(f"--name {template!r}: {taken[stem]} and {label} would both be written as {stem!r}")
            taken[stem] = label
    check_maps(items, config, styles_for, names)


def check_maps(items: list[Item], config, styles_for, names: dict[str, dict[Item, str]]) -> None:
    """Refuse a --name that writes a job as another photo's own stem (`room`: its maps are `room.depth.png`) or as
    one of a photo's maps (`room.depth`), naming both; in any case, as file systems may ignore it."""
    photos = photo_stems(items)
    owners = {stem.lower(): item for item, stem in photos.items()}
    maps = {f"{stem}.{kind}".lower(): (item, kind) for item, stem in photos.items() for kind in PHOTO_KINDS}
    for item in items:
        for style in styles_for(item):
            stem = names[style][item]
            mapped = maps.get(stem.lower())
            other = mapped[0] if mapped else owners.get(stem.lower(), item)
            if mapped or other != item:
                what = f"the name of {other.display}'s {mapped[1]} map" if mapped else f"{other.display}'s own stem"
                raise UsageError(
                    f"--name {config.options.name_template!r}: {item.display} ({style}) would be written as {stem!r}, "
                    f"{what} (a photo's maps are <photo>.input.jpg, <photo>.depth.png, <photo>.masks.jpg)"
                )
