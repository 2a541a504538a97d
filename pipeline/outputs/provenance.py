"""What every result says it is: an AI-edited photograph, in the industry's machine-readable form.

Each result, thumbnail and contact sheet page carries an XMP packet with IPTC's Digital Source Type
`compositeWithTrainedAlgorithmicMedia` (a photograph edited with a generative model: what search engines and
photo tools read, and what the EU AI Act's Article 50 and California's AB 723 ask to be marked), the creator
tool (modomo and its version) and a short description (style, room; for a sheet, what it shows). Marking is
always on. The report's "before" previews (`<photo>.input.jpg`) are the photos themselves and carry none.
"""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from pipeline import __version__

DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
IPTC_EXT = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
XMP_BASIC = "http://ns.adobe.com/xap/1.0/"
DUBLIN_CORE = "http://purl.org/dc/elements/1.1/"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"


def done_to(style: str, removed: list[str] | None = None, mode: str = "restyle") -> str:
    """What was done to a photo, in a few words: `restyled as boho`; a staging: `virtually staged as boho`; a
    declutter (`removed` given, maybe empty): `decluttered (removed: couch, tv)`."""
    if mode == "stage":
        return f"virtually staged as {style}"
    if removed is None:
        return f"restyled as {style}"
    return f"decluttered (removed: {', '.join(removed)})" if removed else "decluttered (nothing found to remove)"


def description(done: str, room: str | None, original: str | None = None) -> str:
    """The result in a sentence: what was done to the photo (`done_to`), by what; and where its unaltered
    original is, when it is published."""
    where = f" {room}" if room else ""
    text = f"Photo of a{where} {done} by modomo with a generative model (AI-edited)"
    return f"{text}; unaltered original: {original}" if original else text


def sheet_description(jobs: int) -> str:
    """A contact sheet page in a sentence: it shows results made with a generative model."""
    photos = f"{jobs} photo{'s' if jobs != 1 else ''}"
    return f"Contact sheet of {photos} restyled by modomo with a generative model (AI-edited)"


def xmp_packet(done: str, room: str | None, original: str | None = None) -> bytes:
    """The XMP packet of one result: digital source type, creator tool, description."""
    return packet(description(done, room, original))


def packet(about: str) -> bytes:
    """An XMP packet: the digital source type, the creator tool and `about` as the description."""
    text = escape(about)
    body = (
        f'<rdf:RDF xmlns:rdf="{RDF}">'
        f'<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="{IPTC_EXT}" xmlns:xmp="{XMP_BASIC}" '
        f'xmlns:dc="{DUBLIN_CORE}" Iptc4xmpExt:DigitalSourceType={quoteattr(DIGITAL_SOURCE_TYPE)} '
        f"xmp:CreatorTool={quoteattr(f'modomo {__version__}')}>"
        f'<dc:description><rdf:Alt><rdf:li xml:lang="x-default">{text}</rdf:li></rdf:Alt></dc:description>'
        "</rdf:Description></rdf:RDF>"
    )
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        f'<x:xmpmeta xmlns:x="adobe:ns:meta/">{body}</x:xmpmeta><?xpacket end="r"?>'
    ).encode()
