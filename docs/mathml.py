"""A mkdocs hook: formulas become MathML when the site is built, so that they show without
JavaScript and without the network (the site opened from disk, offline).

``pymdownx.arithmatex`` (``generic: true``) marks each formula, ``$…$`` as
``<span class="arithmatex">\\(…\\)</span>`` and ``$$…$$`` as
``<div class="arithmatex">\\[…\\]</div>``; latex2mathml turns the LaTeX into MathML, which
browsers draw natively, in its place.
"""

import html
import re

from latex2mathml.converter import convert

_FORMULA = re.compile(
    r'<(?P<tag>span|div) class="arithmatex">\s*\\(?P<open>[(\[])(?P<tex>.*?)\\[)\]]\s*</(?P=tag)>',
    re.DOTALL,
)


def _mathml(match: re.Match) -> str:
    display = "block" if match["open"] == "[" else "inline"
    return convert(html.unescape(match["tex"]).strip(), display=display)


def on_page_content(content: str, **kwargs) -> str:
    return _FORMULA.sub(_mathml, content)
