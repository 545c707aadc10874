"""Browser sessions: when each was last seen, and its copy of each patient it opened.

A browser session works on a :class:`LoadedPatient`: its own
:meth:`~rtplan_assist.evaluation.CaseEvaluator.session_copy` of the patient's prepared
evaluator (shared doses, CT and cached results; own containers, so regimens a user adds and the
results they bring stay in that session), kept in an LRU of ``(session id, patient key)``
(``max_sessions``; measured on the demo patient: ``benches/bench_app.py``,
``benches/bench_load.py``), so switching screens never reloads DICOM. An evaluator is not
thread-safe (its caches are plain dicts), so every use goes through :attr:`LoadedPatient.lock`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .lru import OnceLRU
from .patients import PatientEntry
from .shared import PatientShared

__all__ = ["LoadedPatient", "Sessions"]


@dataclass
class LoadedPatient:
    """A session's copy of a prepared patient and what the screens need next to it.

    The session's regimen choices live in the browser (``prefs``, this patient's entry of the
    ``choices`` store: ``{"choice": {lesion_id: label}, "added": {lesion_id: [label, ...]}}``);
    every method takes them and (re-)adds the added regimens to :attr:`evaluator` (and takes
    off those the user removed), so an evicted and reopened copy knows them again. The evaluation is not thread-safe: call under
    :attr:`lock`.
    """

    entry: PatientEntry
    evaluator: object  # this session's :meth:`Evaluation.copy`
    #: what every session of this patient shares: the CT in HU and the dose view's grids
    shared: PatientShared = field(default_factory=PatientShared, repr=False)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @property
    def case(self):
        return self.evaluator.case

    def __post_init__(self):
        # the regimen lists before any user addition (the session copy is made unchanged
        # from the prepared evaluator), so a removed addition leaves exactly these
        self._base_regimens = {les.lesion_id: set(self.evaluator.regimens_for(les.lesion_id))
                               for les in self.evaluator.lesions}

    def _add(self, lesion_id: str, label: str):
        from rtplan_assist.regimens import parse_regimen

        regimen = parse_regimen(label)
        self.evaluator.add_regimen(lesion_id, regimen)
        return regimen

    def recommendation_for(self, prefs: dict | None):
        """The joint recommendation over the catalogue *and* the regimens this session added
        (``prefs["added"]``): an added regimen competes like any other. The evaluation caches
        it per regimen lists (the preparation job's, over the catalogue, is shared by every
        session that added none)."""
        ids = {les.lesion_id for les in self.evaluator.lesions}
        added = (prefs or {}).get("added") or {}
        with self.lock:
            wanted = {lid: set(regs) for lid, regs in self._base_regimens.items()}
            for lid, labels in sorted(added.items()):
                if lid in ids:
                    for label in labels:
                        wanted[lid].add(self._add(lid, label))
            # an addition the user removed (prefs no longer list it) leaves the lists
            chosen = (prefs or {}).get("choice") or {}
            for lid in ids:
                for regimen in self.evaluator.regimens_for(lid):
                    if regimen not in wanted[lid] and regimen.label != chosen.get(lid):
                        self.evaluator.remove_regimen(lid, regimen)
            return self.evaluator.recommend()

    def choice(self, prefs: dict | None, recommendation=None) -> dict:
        """Lesion id -> Regimen: the recommendation (``recommendation``, default
        :meth:`recommendation_for` of ``prefs``), overridden by the user's choices."""
        prefs = prefs or {}
        ids = {les.lesion_id for les in self.evaluator.lesions}
        with self.lock:
            if recommendation is None:
                recommendation = self.recommendation_for(prefs)
            choice = dict(recommendation.choice)
            for lid, label in (prefs.get("choice") or {}).items():
                if lid in ids:
                    choice[lid] = self._add(lid, label)
        return choice

    def result(self, prefs: dict | None):
        """``(EvaluationResult, choice)`` of the session's choice, with the recommendation over
        the catalogue and the session's added regimens."""
        with self.lock:
            recommendation = self.recommendation_for(prefs)
            choice = self.choice(prefs, recommendation)
            return self.evaluator.result(choice, recommendation=recommendation), choice

    def ct_hu(self) -> np.ndarray | None:
        """CT in HU (float32, [z, y, x]), read once for every session of the patient; None
        without CT."""
        return self.shared.ct_hu(self.case)

    def composite_eqd2(self, choice: dict, alpha_beta_gy: float):
        """``(grid, eqd2_gy)``: the evaluator's composite EQD2 of ``choice`` at one α/β,
        computed once per (choice, α/β) for every session of the patient (the dose view
        slices it on every slider move). Call under :attr:`lock`."""
        key = ("composite", tuple(sorted(choice.items())), float(alpha_beta_gy))
        return self.shared.dose_grid(
            key, lambda: self.evaluator.composite_eqd2(choice, alpha_beta_gy))

    def quality(self) -> list:
        """Plan quality indices of every lesion (:func:`rtplan_assist.quality.lesion_quality`:
        planned dose, planned prescription), computed once per patient in this process for
        every session. Takes no lock: it reads only the lesions' planned doses and targets,
        which no session changes (a session's regimen changes are not blocked meanwhile)."""
        from rtplan_assist.quality import lesion_quality

        return self.shared.quality(lambda: lesion_quality(self.evaluator))

    def scaled_dose(self, lesion, regimen) -> np.ndarray:
        """The physical dose (Gy, float32, [z, y, x]) of ``lesion`` scaled from its planned
        regimen to ``regimen`` (D/D0), computed once per (lesion, regimen) for every session."""
        key = ("lesion", lesion.lesion_id, regimen)
        return self.shared.dose_grid(
            key, lambda: lesion.dose.dose_gy * np.float32(regimen.scale_from(lesion.planned)))


class Sessions:
    """Last-seen times of browser sessions and their :class:`LoadedPatient` copies.

    Parameters
    ----------
    ttl_s : float
        A session unseen for this long is forgotten at the next :meth:`touch`.
    max_sessions : int
        LRU bound on (session, patient) copies; a copy shares the patient's data, so it costs
        only the results that session added.
    """

    def __init__(self, ttl_s: float = 4 * 3600.0, max_sessions: int = 64):
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._seen: dict[str, float] = {}
        self._open = OnceLRU(max_sessions)  # (session, patient key) -> LoadedPatient

    @property
    def max_sessions(self) -> int:
        return self._open.max_size

    def __len__(self) -> int:
        return len(self._open)

    def touch(self, session: str | None) -> list[str]:
        """Mark a session as active; forget sessions unseen for ``ttl_s`` and return them."""
        now = time.monotonic()
        with self._lock:
            if session:
                self._seen[session] = now
            expired = [s for s, t in self._seen.items() if now - t > self.ttl_s]
            for s in expired:
                self._seen.pop(s, None)
        if expired:
            gone = set(expired)
            self._open.discard(lambda key, _loaded: key[0] not in gone)
        return expired

    def patient(self, session: str, key: str,
                open_patient: Callable[[], LoadedPatient]) -> LoadedPatient:
        """The session's copy of patient ``key``: an LRU hit, else ``open_patient()`` (once,
        however many requests of the session ask at the same time)."""
        return self._open.get((session, key), open_patient)

    def close_patient(self, session: str, key: str) -> None:
        """Drop the session's copy of patient ``key`` (its upload was replaced)."""
        # also its copies prepared with the user's targets/prescriptions ("key#options")
        self._open.discard(lambda k, _loaded: not (
            k[0] == session and (k[1] == key or k[1].startswith(key + "#"))))

    def clear(self) -> None:
        self._open.clear()
