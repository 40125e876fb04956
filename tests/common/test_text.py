"""User text written into Markdown renders as exactly its characters (CommonMark renderer)."""

from __future__ import annotations

import html
import re

import pytest
from markdown_it import MarkdownIt

from nas_core.common.text import WORD_JOINER, md_text

# the bare-URL and e-mail patterns of GitHub-flavoured Markdown's autolink extension
GFM_AUTOLINK = re.compile(r"(https?://|www(?=\.))[-.\w]+|[-.\w+]+@[-\w]+(\.[-\w]+)+", re.I)

HOSTILE = [
    "[x](javascript:alert(1))",
    "![](http://127.0.0.1:9/pixel)",
    "<img src=x onerror=alert(1)>",
    "**bold** _it_ `code` ~~gone~~",
    "# heading\n- item\n> quote",
    "a | b\n---|---\n1 | 2",
    "<http://example.org> https://example.org",
    ":red[red] :material/home: $x^2$",
    "[link][ref]\n\n[ref]: http://example.org",
    "back\\slash \\[ \\",
    "&lt;amp&gt; &#60;",
    "plain name",
    "alice@lab.example www.example.org ftp://x.org",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_markdown_shows_the_characters_and_nothing_else(text):
    rendered = MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(md_text(text))
    assert "<a" not in rendered and "<img" not in rendered and "<code" not in rendered
    assert not re.search(r"<(h\d|li|blockquote|table|strong|em|s)\b", rendered)
    shown = html.unescape(re.sub(r"<[^>]+>", "", rendered)).strip()
    assert not GFM_AUTOLINK.search(shown)
    shown = shown.replace(WORD_JOINER, "")
    assert shown == " ".join(text.split("\n")) or shown == text.replace("\n", " ")
