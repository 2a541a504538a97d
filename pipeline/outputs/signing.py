"""C2PA content credentials: a signed manifest embedded in each result and thumbnail (`--sign-cert/--sign-key`).

The manifest says what the file is and where it came from, in the form the Content Authenticity Initiative's
validators read: the input photo as its parent ingredient (hash-bound, and with its own credentials carried over
when it has them), a `c2pa.opened` action naming that ingredient, a `c2pa.edited` action with IPTC's digital
source type `compositeWithTrainedAlgorithmicMedia` and modomo as the software agent (a thumbnail adds
`c2pa.resized`), and a `modomo.restyle` assertion with the style, prompt, seed, model ids and settings hash.
The signature covers the file's bytes, so any change to the pixels after signing fails validation.

A contact sheet page is signed with the same identity: each picture it shows (the results' thumbnails, with their
own signed manifests carried over) is a `componentOf` ingredient named by a `c2pa.placed` action, after a
`c2pa.created` action with the same digital source type.

No thumbnails are embedded in the manifest (c2pa's default): the result is its own picture, the index links the
original, and an embedded copy of a 768 px result would double the file.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from pipeline import __version__
from pipeline.errors import UsageError
from pipeline.outputs.credentials import TRUST_CODES, Credentials, load_credentials
from pipeline.outputs.provenance import DIGITAL_SOURCE_TYPE

SETTINGS = {"builder": {"thumbnail": {"enabled": False}}}
ASSERTION = "modomo.restyle"
PARENT = "parent"  # the ingredient's label, which the opened action names


@dataclass(frozen=True)
class Parent:
    """The photo a result was made from: its bytes (None when it could not be kept) and its name."""

    data: bytes | None
    title: str


def sign(
    credentials: Credentials, data: bytes, mime: str, title: str, parent: Parent, about: dict, resized: bool = False
) -> bytes:
    """`data` (an encoded image of type `mime`) with a signed manifest embedded; C2paError if c2pa refuses."""
    import c2pa

    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(credentials.alg, credentials.chain, credentials.key, None))
    context = c2pa.Context(c2pa.Settings.from_dict(SETTINGS))
    parent_mime = image_mime(parent.data)
    readable = parent_mime is not None and parent_mime in supported_mimes()
    described = {
        "title": parent.title,
        "relationship": "parentOf",
        "label": PARENT,
        **({"format": parent_mime or "application/octet-stream"} if not readable else {}),
    }
    with (
        signer,
        context,
        c2pa.Builder(manifest(title, about, resized, None if readable else described), context) as builder,
    ):
        if readable:  # hash-bound to the photo's bytes; its own manifest store, if any, comes along
            builder.add_ingredient(described, parent_mime, io.BytesIO(parent.data))
        signed = io.BytesIO()
        builder.sign(signer, mime, io.BytesIO(data), signed)
    return signed.getvalue()


def sign_sheet(credentials: Credentials, data: bytes, title: str, shown: list[Parent], about: dict) -> bytes:
    """A contact sheet page (JPEG `data`) with a signed manifest whose ingredients are the pictures it shows
    (those c2pa cannot read are left out); C2paError if c2pa refuses."""
    import c2pa

    readable = [(part, image_mime(part.data)) for part in shown]
    readable = [(part, mime) for part, mime in readable if mime in supported_mimes()]
    labels = [f"shown-{n}" for n in range(1, len(readable) + 1)]
    agent = {"name": "modomo", "version": __version__}
    actions = [
        {
            "action": "c2pa.created",
            "digitalSourceType": DIGITAL_SOURCE_TYPE,
            "softwareAgent": agent,
            "description": "A contact sheet of photos restyled with a generative model",
        },
        *([{"action": "c2pa.placed", "parameters": {"ingredientIds": labels}}] if labels else []),
    ]
    definition = {
        "claim_generator_info": [agent],
        "title": title,
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": actions}},
            {"label": ASSERTION, "data": about},
        ],
    }
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(credentials.alg, credentials.chain, credentials.key, None))
    context = c2pa.Context(c2pa.Settings.from_dict(SETTINGS))
    with signer, context, c2pa.Builder(definition, context) as builder:
        for label, (part, mime) in zip(labels, readable, strict=True):
            ingredient = {"title": part.title, "relationship": "componentOf", "label": label}
            builder.add_ingredient(ingredient, mime, io.BytesIO(part.data))
        signed = io.BytesIO()
        builder.sign(signer, "image/jpeg", io.BytesIO(data), signed)
    return signed.getvalue()


def manifest(title: str, about: dict, resized: bool, ingredient: dict | None) -> dict:
    """The manifest definition: the actions C2PA validation asks for, and what modomo did."""
    agent = {"name": "modomo", "version": __version__}
    actions = [
        {"action": "c2pa.opened", "parameters": {"ingredientIds": [PARENT]}},
        {
            "action": "c2pa.edited",
            "digitalSourceType": DIGITAL_SOURCE_TYPE,
            "softwareAgent": agent,
            "description": f"{about.get('done', 'restyled').capitalize()} with a generative model",
        },
    ]
    if resized:
        actions.append({"action": "c2pa.resized", "softwareAgent": agent})
    return {
        "claim_generator_info": [agent],
        "title": title,
        **({"ingredients": [ingredient]} if ingredient else {}),
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": actions}},
            {"label": ASSERTION, "data": about},
        ],
    }


def image_mime(data: bytes | None) -> str | None:
    """An image's MIME type from its own bytes (not its name), or None."""
    if not data:
        return None
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            return Image.MIME.get(image.format or "")
    except (UnidentifiedImageError, OSError, ValueError, ImportError):  # ImportError: a plugin's missing library
        return None


def supported_mimes() -> set[str]:
    import c2pa

    return set(c2pa.Builder.get_supported_mime_types())


def load_signing(cert: str | None, key: str | None) -> Credentials | None:
    """The run's signing identity, read, matched and tried; None when the run signs nothing."""
    credentials = load_credentials(cert, key)
    if credentials is not None:
        rehearse(credentials)
    return credentials


def rehearse(credentials: Credentials) -> None:
    """Sign a tiny image with the credentials and validate it: what c2pa refuses (a CA certificate, a missing
    key usage or extended key usage, an expired certificate) is one line now, not a failure per result."""
    import c2pa
    from PIL import Image

    picture = io.BytesIO()
    Image.new("RGB", (16, 16), (128, 128, 128)).save(picture, "PNG")
    data = picture.getvalue()
    where = f"--sign-cert {credentials.source}"
    try:
        signed = sign(credentials, data, "image/png", "check.png", Parent(data, "check.png"), {"style": "check"})
        with c2pa.Reader("image/png", io.BytesIO(signed)) as reader:
            results = reader.get_validation_results() or {}
    except c2pa.C2paError as exc:
        raise UsageError(f"{where}: c2pa cannot sign with it: {' '.join(str(exc).split())}") from None
    failures = [f for f in (results.get("activeManifest") or {}).get("failure", []) if f["code"] not in TRUST_CODES]
    if failures:
        first = failures[0]
        raise UsageError(
            f"{where}: a manifest signed with it does not validate: {first['code']} ({first.get('explanation', '')})"
        )
