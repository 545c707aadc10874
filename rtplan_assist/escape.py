"""Escaping of DICOM-derived text (ROI names, plan labels, IDs) for the context it lands in.

A structure set is written by whoever exported it: an ROI name can hold ``<a href>``, a
blank line that ends an HTML block inside Markdown, ``$...$`` that matplotlib reads as
mathtext, a carriage return that ends a CSS string, or ``=HYPERLINK(...)`` that a
spreadsheet runs as a formula. Each function here makes such text inert for one context;
the caller picks the one of the place it writes to (issue 18).

* :func:`html_text` and :func:`html_attribute`: HTML element text and quoted attribute values;
* :func:`markdown_html`: text placed inside raw HTML in a Markdown document
  (``dcc.Markdown(dangerously_allow_html=True)``): HTML-escaped and kept on one line (line
  breaks as character references), so it cannot end the HTML block;
* :func:`css_string`: the inside of a double-quoted CSS string (``content: "..."``);
* :func:`mathtext_literal`: matplotlib text shown literally (``$``, and ``\\`` before it);
* :func:`plotly_text`: plotly trace names, hover text and titles (plotly renders ``<a href>``,
  ``<b>``, ``<br>`` and decodes entities; hover templates substitute ``%{...}``);
* :func:`safe_filename`: a download or output file name from DICOM text (a PatientID such as
  ``../../etc/x`` or ``/tmp/x``): one safe basename, never a path;
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
    "plotly_text",
    "safe_filename",
]


def html_text(text) -> str:
    """``text`` for HTML element content: ``& < > " '`` escaped."""
    return html.escape(str(text), quote=True)


def html_attribute(text) -> str:
    """``text`` for a double- or single-quoted HTML attribute value (also no line breaks)."""
    return html.escape(" ".join(str(text).splitlines()), quote=True)


#: Line breaks: the only way out of a raw HTML block in CommonMark is a blank line (type 6
#: blocks, ``<div>``/``<table>``, end there); inside the block nothing is read as Markdown.
_LINE_BREAKS = re.compile("[\r\n\f\v\x85\u2028\u2029]")


def markdown_html(text) -> str:
    """``text`` for raw HTML inside Markdown (``dcc.Markdown(dangerously_allow_html=True)``):
    HTML-escaped (``& < > " '``), and every line break as a numeric character reference
    (``&#10;``), so the text stays on one line: it can neither end the HTML block (a blank
    line) and turn into Markdown (links, images fetched from other hosts) nor form a tag."""
    escaped = html.escape(str(text), quote=True)
    return _LINE_BREAKS.sub(lambda m: f"&#{ord(m.group())};", escaped)


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


def plotly_text(text) -> str:
    """Text for plotly names, hover text and hover templates: ``& < >`` as entities (plotly
    decodes them when drawing, so no tag or link is formed) and ``%`` as ``&#37;`` (no
    ``%{...}`` template substitution)."""
    return html.escape(str(text), quote=False).replace("%", "&#37;")


_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


def safe_filename(stem, suffix: str = "", default: str = "patient") -> str:
    """A file name built from DICOM text: every run of characters other than letters, digits,
    ``.``, ``_`` and ``-`` becomes ``_`` (so no ``/``, ``\\``, NUL or drive), leading dots and
    underscores are dropped (no ``..``, no hidden file), at most 64 characters; ``default``
    when nothing is left. ``suffix`` (e.g. ``"_report.pdf"``) is appended as given."""
    text = _UNSAFE_FILENAME.sub("_", str(stem or "")).strip("._")[:64].rstrip("._")
    return (text or default) + suffix
