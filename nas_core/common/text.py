"""Text from users (dataset names, labels, owner names, file contents) written into Markdown.

Streamlit renders messages, captions and widget labels as Markdown (links, images, colour and
icon directives, LaTeX), and the model card is Markdown on the Hub. A name such as
``[x](javascript:...)`` or ``![](http://...)`` must show as those characters, never as a link
or an image that the reader's browser fetches.
"""

from __future__ import annotations

import re
import string

_ESCAPE = str.maketrans({c: "\\" + c for c in string.punctuation})
_LINE_BREAKS = str.maketrans({"\r": " ", "\n": " ", "\t": " ", "\v": " ", "\f": " ",
                              "\u2028": " ", "\u2029": " "})

# GitHub-flavoured Markdown (Streamlit, the Hub) turns bare URLs and e-mail addresses into links
# after parsing, escapes or not; an invisible WORD JOINER inside "http://", "www." and before
# "@" keeps them text.
WORD_JOINER = "\u2060"
_AUTOLINK = re.compile(r"(?i)(https?|ftp|mailto|xmpp|www)(?=[:.])|(?=@)")


def md_sentence(value: object) -> str:
    """:func:`md_text` of a message that starts a sentence on a page: its first letter
    capitalised (the engine's messages follow 'error: ' on the command line, in lower case)."""
    text = str(value)
    return md_text(text[:1].upper() + text[1:])


def md_text(value: object) -> str:
    """``value`` as Markdown that renders as exactly its characters, on one line.

    Every ASCII punctuation character is backslash-escaped (CommonMark allows escaping any of
    them), so no emphasis, link, image, HTML, code span, table, directive or formula can start;
    line breaks become spaces so no heading or list can start either; bare URLs and e-mail
    addresses get an invisible word joiner so that no autolink forms.
    """
    text = _AUTOLINK.sub(lambda m: (m.group(1) or "") + WORD_JOINER, str(value))
    return text.translate(_LINE_BREAKS).translate(_ESCAPE)
