"""Escaping of DICOM-derived text (ROI names, plan labels, IDs) for the context it lands in.

A structure set is written by whoever exported it: an ROI name can hold ``<a href>``, a
blank line that ends an HTML block inside Markdown, ``$...$`` that matplotlib reads as
mathtext, a carriage return that ends a CSS string, or ``=HYPERLINK(...)`` that a
spreadsheet runs as a formula. Each function here makes such text inert for one context;
the caller picks the one of the place it writes to (issue 18).

* :func:`html_text` and :func:`html_attribute`: HTML element text and quoted attribute values;
* :func:`markdown_html`: text placed inside raw HTML in a Markdown document
  (``dcc.Markdown(dangerously_allow_html=True)``): HTML-escaped, and every character that
  Markdown or a line structure could act on is written as a numeric character reference;
* :func:`css_string`: the inside of a double-quoted CSS string (``content: "..."``);
* :func:`mathtext_literal`: matplotlib text shown literally (``$``, and ``\\`` before it);
* :func:`csv_cell`: a spreadsheet cell that cannot start a formula (OWASP "CSV injection":
  a cell starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return gets a leading
  ``'``; plain numbers such as ``-1.5`` are left alone).
"""

from __future__ import annotations

import html
import math
import re

__all__ = [
    "css_string",
    "csv_cell",
    "html_attribute",
    "html_text",
    "markdown_html",
    "mathtext_literal",
]


def html_text(text) -> str:
    """``text`` for HTML element content: ``& < > " '`` escaped."""
    return html.escape(str(text), quote=True)


def html_attribute(text) -> str:
    """``text`` for a double- or single-quoted HTML attribute value (also no line breaks)."""
    return html.escape(" ".join(str(text).splitlines()), quote=True)


#: Characters Markdown can act on (emphasis, links, images, code, headings, lists, tables,
#: escapes) and line breaks (a blank line ends a raw HTML block and starts Markdown).
_MARKDOWN_ACTIVE = re.compile(r"[\\`*_{}\[\]()#+\-.!|~<>&\"'\r\n\f\v\t]")


def markdown_html(text) -> str:
    """``text`` for raw HTML inside Markdown: every Markdown-active character and every line
    break is a numeric character reference (``&#42;``), so the text renders as itself in one
    line and can neither close the HTML block nor form a link or an image."""
    return _MARKDOWN_ACTIVE.sub(lambda m: f"&#{ord(m.group())};", str(text))


def css_string(text) -> str:
    """The inside of a double-quoted CSS string: ``\\``, quotes and every control character
    (``\\n``, ``\\r``, ``\\f`` end a CSS string) written as CSS hex escapes."""
    out = []
    for ch in str(text):
        if ch in '\\"\'' or ord(ch) < 0x20 or ord(ch) == 0x7F or ch in "<>":
            out.append(f"\\{ord(ch):06x}")
        else:
            out.append(ch)
    return "".join(out)


def mathtext_literal(text) -> str:
    """matplotlib text that is drawn as written: every ``$`` escaped (``\\$``), so that a pair
    never starts mathtext (which raises on bad TeX or renders something else)."""
    return str(text).replace("$", r"\$")


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "|", "%")


def csv_cell(value):
    """A CSV cell a spreadsheet will not run: text starting with ``= + - @ | %``, a tab or a
    line break gets a leading ``'`` (numbers, and text that is a plain number like ``-2.5``,
    are unchanged)."""
    if not isinstance(value, str) or not value.startswith(_FORMULA_START):
        return value
    try:
        if math.isfinite(float(value)):
            return value
    except ValueError:
        pass
    return "'" + value
