"""Public-domain paintings shipped with stylecore, so a member can paint without hunting for a style.

Each artist died more than 70 years ago and each work was published more than 95 years ago, so
all are public domain in the EU, the UK, the US and wherever copyright ends by life + 70 years;
`paintings.json` and `SOURCES.md` next to this file hold each one's attribution and exact status,
and travel with every copy. Nothing here imports torch or knows
about Discord: the bot uses `find` for autocomplete and `contact_sheet` to show the choice.
"""

from stylecore.gallery.catalogue import Painting, UnknownPainting, find, fold_name, get, load, paintings
from stylecore.gallery.sheet import contact_sheet

__all__ = ["Painting", "UnknownPainting", "contact_sheet", "find", "fold_name", "get", "load", "paintings"]
