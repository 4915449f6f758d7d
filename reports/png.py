"""Figures as PNG: palette-compressed bytes, drawn in parallel where asked, and the report page's
images (each embedded once, as a data URI). reports/plots.py draws the figures; this turns them
into bytes and files.
"""

from __future__ import annotations

import base64
import hashlib
import io
import multiprocessing
from collections.abc import Callable
from pathlib import Path

from matplotlib.figure import Figure
from PIL import Image

DPI = 90
# PNGs are palette-quantized: a third of the bytes of RGBA; 64 colours cut the default report's images by
# ~8% more than 256 (decision regions 664 -> 514 KB), no visible loss (a gradient in 64 steps)
PALETTE_COLOURS = 64


def compress_png(png: bytes, colours: int = PALETTE_COLOURS) -> bytes:
    """A PNG re-encoded with a palette of at most `colours` (octree, no dithering) and zlib's best effort.

    The smaller of that and the input is returned, so an already small PNG never grows.
    """
    with Image.open(io.BytesIO(png)) as im:
        if im.mode == "P":
            return png  # already a palette image
        im.load()
        opaque = im.convert("RGBA")
        rgb = Image.new("RGB", opaque.size, "white")
        rgb.paste(opaque, mask=opaque.getchannel("A"))  # plots are drawn on white: flatten onto it
    out = io.BytesIO()
    rgb.quantize(colors=colours, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(
        out, format="PNG", optimize=True
    )
    small = out.getvalue()
    return small if len(small) < len(png) else png


def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return compress_png(buf.getvalue())


_MAKERS: list[Callable[[], Figure | None]] = []  # pngs' work list, inherited by its forked workers


def pngs(makers: list[Callable[[], Figure | None]], jobs: int = 1) -> list[bytes | None]:
    """Each maker's figure as PNG bytes (None where it draws nothing), in up to `jobs` forked
    processes: drawing is most of the report's time, and the report is the run's last job, alone on
    the machine. The makers are closures over the loaded runs; fork hands them over unpickled."""
    global _MAKERS
    if jobs <= 1 or len(makers) < 2:
        return [_png_of(make) for make in makers]
    _MAKERS = makers
    try:
        with multiprocessing.get_context("fork").Pool(min(jobs, len(makers))) as pool:
            return pool.map(_png_at, range(len(makers)), chunksize=1)
    finally:
        _MAKERS = []


def _png_at(i: int) -> bytes | None:
    return _png_of(_MAKERS[i])


def _png_of(make: Callable[[], Figure | None]) -> bytes | None:
    fig = make()
    return None if fig is None else png_bytes(fig)


def save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(fig))
    return path


class Images:
    """The page's images, each embedded once: a repeated image becomes a link to its first figure."""

    def __init__(self) -> None:
        self.seen: dict[str, str] = {}
        self.named: dict[str, bytes] = {}  # figure file name -> PNG, for the plots folder (write_report)

    def figure(self, png: bytes, alt: str, caption: str = "") -> dict:
        """An image for the templates: a compressed PNG as a data URI (uri None if shown before: same_as its id)."""
        digest = hashlib.sha256(png).hexdigest()[:12]
        if digest in self.seen:
            return {"uri": None, "same_as": self.seen[digest], "id": None, "alt": alt, "caption": caption}
        self.seen[digest] = f"img-{digest}"
        uri = "data:image/png;base64," + base64.b64encode(compress_png(png)).decode("ascii")
        return {"uri": uri, "same_as": None, "id": self.seen[digest], "alt": alt, "caption": caption}


def page_figure(fig, alt: str, caption: str, images: Images, name: str = "") -> dict | None:
    """The figure on the page; `name` (plots.write_figures' file name) keeps its PNG for the plots folder."""
    return None if fig is None else page_png(png_bytes(fig), alt, caption, images, name)


def page_png(png: bytes | None, alt: str, caption: str, images: Images, name: str = "") -> dict | None:
    if png is None:
        return None
    if name:
        images.named[name] = png
    return images.figure(png, alt, caption)


def page_figures(makers: list[tuple], images: Images, jobs: int) -> list[dict | None]:
    """page_figure for each (make, alt, caption, name), the figures drawn in `jobs` processes (pngs)."""
    drawn = pngs([make for make, *_ in makers], jobs)
    return [page_png(png, alt, caption, images, name) for png, (_, alt, caption, name) in zip(drawn, makers)]
