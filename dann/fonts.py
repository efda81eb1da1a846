"""Drawing class names: a font that has a glyph for every character of them (DejaVu Sans, which
matplotlib ships, covers Latin, Greek and Cyrillic; another installed font may cover the rest), or,
where no font has them, the classes' numbers instead, said in one line."""
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=None)
def _covers(font_file, text):
    from matplotlib.ft2font import FT2Font
    try:
        font = FT2Font(font_file)
    except (OSError, RuntimeError, ValueError):
        return False
    return all(font.get_char_index(ord(c)) for c in text if not c.isspace())


def font_for(text):
    """A font file with a glyph for every character of `text`, DejaVu Sans first; None if none has."""
    import matplotlib
    from matplotlib import font_manager
    dejavu = str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf")
    # LastResort maps every character to a box that only names its Unicode block: not a glyph
    candidates = [dejavu] + sorted({f.fname for f in font_manager.fontManager.ttflist
                                    if f.fname.endswith(".ttf") and "LastResort" not in f.fname})
    return next((f for f in candidates if _covers(f, text)), None)


@lru_cache(maxsize=None)
def drawable(names):
    """names (a tuple) -> (font file, labels to draw, note): the names themselves in a font that has
    their glyphs, or the classes' numbers (note then says which is which, for a one-line message)."""
    font = font_for("".join(names) + "0123456789.%:?,")
    if font is not None:
        return font, list(names), None
    font = font_for("0123456789.%:?,")
    note = ("no font here has the characters of the class names, so pictures show class numbers: "
            + ", ".join(f"{i} = {name}" for i, name in enumerate(names)))
    return font, [str(i) for i in range(len(names))], note
