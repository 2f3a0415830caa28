"""A sweep as one group of cell studies: every (solver, step count) is an Optuna study of its own.

The cells share one storage; each records the sweep it belongs to in its user attribute
``sweep`` (the others: ``record.study_attrs``). ``Sweep`` shows the group the way export,
report and summary read a study: its trials numbered across the group in the order the storage
created them (stable: new trials only come after), its provenance (``attrs``), its confirmation
records, its Pareto front.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..samplers.spec import SamplerSpec
from .record import CONFIRM_PREFIX, GROUP_ATTR, MODEL_NAME, NFE, set_study_attr, study_attrs


def cell_key(cell: SamplerSpec) -> str:
    """The short name of a cell: solver and step count, e.g. ``heun-steps4``."""
    return f"{cell.name}-steps{cell.steps}"


def cell_study_name(group: str, cell: SamplerSpec) -> str:
    """The Optuna study that searches ``cell`` of the sweep ``group``."""
    return f"{group}/{cell_key(cell)}"


def trial_label(study, trial: FrozenTrial) -> str:
    """How logs, tables, reports and W&B name a trial: its cell and its number there.

    ``heun-steps6#8`` for trial 8 of cell ``<sweep>/heun-steps6``, whether ``study`` is the
    cell or the ``Sweep`` (whose own numbers run across the cells).
    """
    if isinstance(study, Sweep):
        where = study.where(trial.number)
        study, number = study.cells[where.cell], where.number
    else:
        number = trial.number
    return f"{study.study_name.rsplit('/', 1)[-1]}#{number}"


def cell_label(study: optuna.Study) -> str:
    """A cell as people read it: ``heun-steps4 (NFE 7)``."""
    name = study.study_name.rsplit("/", 1)[-1]
    nfe = study.user_attrs.get(NFE)
    return f"{name} (NFE {nfe})" if nfe is not None else name


@dataclass(frozen=True)
class Where:
    """Where a group trial lives: its cell (index into ``Sweep.cells``) and number there."""

    cell: int
    number: int


class Sweep:
    """The cells of one sweep read as one study (read-only but for confirmation records)."""

    def __init__(self, name: str, cells: Sequence[optuna.Study]) -> None:
        self.study_name = name
        self.cells = list(cells)
        self.refresh()

    def refresh(self) -> None:
        """Read every cell's trials and attributes again."""
        pairs = [(t, i) for i, cell in enumerate(self.cells)
                 for t in cell.get_trials(deepcopy=False)]
        pairs.sort(key=lambda p: p[0]._trial_id)
        self._trials: list[FrozenTrial] = []
        self._where: list[Where] = []
        self._number: dict[tuple[int, int], int] = {}
        for number, (trial, cell) in enumerate(pairs):
            view = copy.copy(trial)
            view.number = number
            self._trials.append(view)
            self._where.append(Where(cell, trial.number))
            self._number[(cell, trial.number)] = number
        self._attrs = [study_attrs(cell) for cell in self.cells]

    @property
    def directions(self) -> list[optuna.study.StudyDirection]:
        """The objectives' directions (the same in every cell)."""
        return self.cells[0].directions

    @property
    def trials(self) -> list[FrozenTrial]:
        """Every trial of the group, numbered across the group."""
        return list(self._trials)

    def get_trials(self, deepcopy: bool = False,
                   states: Iterable[TrialState] | None = None) -> list[FrozenTrial]:
        """The group's trials, optionally only those in ``states``."""
        chosen = self._trials if states is None else \
            [t for t in self._trials if t.state in tuple(states)]
        return [copy.deepcopy(t) for t in chosen] if deepcopy else list(chosen)

    def where(self, number: int) -> Where:
        """The cell and the cell's own trial number of group trial ``number``."""
        return self._where[number]

    def cell_of(self, number: int) -> optuna.Study:
        """The cell study that holds group trial ``number``."""
        return self.cells[self._where[number].cell]

    @property
    def attrs(self) -> dict:
        """The first cell's provenance, and every cell's confirmation records by group number."""
        attrs = {k: v for k, v in self._attrs[0].items()
                 if not k.startswith(CONFIRM_PREFIX)} if self._attrs else {}
        for i, cell_attrs in enumerate(self._attrs):
            for key, value in cell_attrs.items():
                if not key.startswith(CONFIRM_PREFIX):
                    continue
                prefix, local = key.rsplit("/", 1)
                number = self._number.get((i, int(local)))
                if number is not None:
                    attrs[f"{prefix}/{number}"] = value
        return attrs

    def set_attr(self, key: str, value: object) -> None:
        """Store the record ``confirm/.../N`` of group trial N in its cell, by its number there."""
        prefix, number = key.rsplit("/", 1)
        where = self._where[int(number)]
        set_study_attr(self.cells[where.cell], f"{prefix}/{where.number}", value)
        self._attrs[where.cell][f"{prefix}/{where.number}"] = value

    @property
    def best_trials(self) -> list[FrozenTrial]:
        """The completed trials no other completed trial dominates (every objective minimised)."""
        done = self.get_trials(states=(TrialState.COMPLETE,))
        return [t for t in done if not any(
            all(a <= b for a, b in zip(o.values, t.values, strict=True))
            and o.values != t.values for o in done)]


def group_studies(storage: optuna.storages.BaseStorage, name: str) -> list[str]:
    """The names of the cell studies of sweep ``name`` in ``storage``, sorted."""
    return sorted(s.study_name for s in storage.get_all_studies()
                  if s.user_attrs.get(GROUP_ATTR) == name)


def sweep_names(storage: optuna.storages.BaseStorage) -> list[str]:
    """The names of the sweeps in ``storage``, sorted."""
    return sorted({str(s.user_attrs[GROUP_ATTR]) for s in storage.get_all_studies()
                   if GROUP_ATTR in s.user_attrs})


def ours(attrs: dict) -> bool:
    """Whether a study's attributes are a skipsearch sweep's: a cell, or an older single study."""
    return GROUP_ATTR in attrs or MODEL_NAME in attrs


def legacy_study(storage: optuna.storages.BaseStorage, name: str) -> bool:
    """True when ``name`` is one study searching the step count as a parameter (older sweeps)."""
    return any(s.study_name == name and GROUP_ATTR not in s.user_attrs
               and MODEL_NAME in s.user_attrs for s in storage.get_all_studies())


def plain_studies(storage: optuna.storages.BaseStorage) -> list[str]:
    """The studies of ``storage`` that are no skipsearch sweep (made with Optuna itself), sorted.

    A sweep's cell records the sweep it belongs to, an older single study its model.
    """
    return sorted(s.study_name for s in storage.get_all_studies() if not ours(s.user_attrs))


def load_sweep(storage: optuna.storages.BaseStorage | str, name: str) -> Sweep:
    """The sweep ``name``: its cells, or an older single study of that name; KeyError if none."""
    storage = optuna.storages.get_storage(storage)
    names = group_studies(storage, name)
    if not names and legacy_study(storage, name):
        names = [name]
    if not names:
        raise KeyError(name)
    cells = [optuna.load_study(study_name=n, storage=storage) for n in names]
    cells.sort(key=lambda c: (c.user_attrs.get(NFE, 0), c.study_name))
    return Sweep(name, cells)
