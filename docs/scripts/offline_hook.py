"""MkDocs hook: the built site must not load anything from the network.

Notebook pages (nbconvert's lab template) carry a MathJax loader and a Mermaid module that
imports from a CDN when a page has diagrams; neither is used by the tutorials, so both are
removed. Then every page is checked: a script, stylesheet, image or ES-module import from
http(s) is logged as a warning, which `mkdocs build --strict` turns into an error. Links
(<a href>) to other sites are fine: they are not fetched.
"""

from __future__ import annotations

import logging
import re

log = logging.getLogger("mkdocs.plugins.offline_check")

_MATHJAX = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.S)
_MERMAID = re.compile(r'<script type="module">(?:(?!</script>).)*?mermaid(?:(?!</script>).)*?</script>', re.S)
_FETCHED = re.compile(
    r"""<(?:script|img|iframe|source|embed)\b[^>]*\bsrc=["']?(https?:)?//"""
    r"""|<link\b[^>]*\bhref=["']?(https?:)?//"""
    r"""|\bimport\(\s*["'](https?:)?//"""
    r"""|@import\s+(?:url\()?["']?(https?:)?//""",
    re.I,
)


def on_page_content(html: str, page, config, files) -> str:
    return _MERMAID.sub("", _MATHJAX.sub("", html))


def on_post_page(output: str, page, config) -> str:
    for m in _FETCHED.finditer(output):
        excerpt = output[m.start() : m.start() + 120].replace("\n", " ")
        log.warning("%s loads a resource from the network: %s", page.file.src_uri, excerpt)
    return output
