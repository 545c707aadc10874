"""De-identified mode: withhold every patient identifier the app knows from its answers."""

from __future__ import annotations

import threading

from rtplan_assist.deidentify import Identifiers, scrub_tree

__all__ = ["Scrubber"]


class Scrubber:
    """The identifiers of the app's patients and :meth:`scrub` over them.

    Parameters
    ----------
    enabled : bool
        ``serve --deidentify``; when False :meth:`scrub` returns its argument unchanged.
    folders : dict
        Patient key -> folder, known before any patient is loaded; IDs and names are added by
        :meth:`learn` once a patient is loaded.
    """

    def __init__(self, enabled: bool, folders: dict):
        self.enabled = enabled
        self._lock = threading.Lock()
        self._identifiers: dict[str, Identifiers] = {
            key: Identifiers.of(None, None, folder) for key, folder in folders.items()}

    def learn(self, key: str, case, folder) -> None:
        """Withhold the ID, name and folders of the loaded ``case`` of patient ``key`` too."""
        identifiers = Identifiers.of_case(case, folder)
        with self._lock:
            self._identifiers[key] = identifiers

    def scrub(self, value):
        """``value`` with every known patient identifier withheld, when enabled (else
        ``value`` unchanged): IDs → their key, names and folder names → ``(withheld)``, folder
        paths → ``<patient folder>`` (:mod:`rtplan_assist.deidentify`).

        Walks strings, lists, tuples, dicts (values) and Dash components (every property but
        ``id``, in place); numbers, arrays and ``no_update`` pass. Applied to every answer of
        the app's callbacks, so a screen added later is covered too.
        """
        if not self.enabled:
            return value
        with self._lock:
            rules = list(self._identifiers.values())
        return _scrub_output(value, rules)


def _scrub_output(value, rules: list[Identifiers]):
    from dash.development.base_component import Component

    def scrub(text: str) -> str:
        for ids in rules:
            text = ids.scrub(text)
        return text

    def component(item, walk):
        # a Dash component: every property but its id, in place (unset ones stay unset)
        if isinstance(item, Component):
            for prop in item._prop_names:
                current = getattr(item, prop, None)
                if prop != "id" and isinstance(current, str | list | tuple | dict | Component):
                    setattr(item, prop, walk(current))
        return item

    return scrub_tree(value, scrub, keys=False, other=component)
