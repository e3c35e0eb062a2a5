"""One seed object for a run: named sub-streams of one :class:`numpy.random.SeedSequence`.

Every random phase of every entry point (the file job on either engine, :func:`gioselect.spark.select`,
:func:`gioselect.selector.select_quantized`) draws its seed from here, so the same ``seed`` gives the same
sub-seeds everywhere. The names are fixed in order: a name's sub-seed is the ``i``-th spawned child of
``SeedSequence(seed)`` (children do not depend on how many are spawned), so adding a name at the end changes
no existing value.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

__all__ = ["SEED_NAMES", "Seeds"]

SEED_NAMES = ("pool_kmeans", "target_kmeans", "gio", "explode", "report")


class Seeds(Mapping[str, int]):
    """The sub-seeds of a run, by phase name (a read-only mapping ``name -> int``).

    Parameters
    ----------
    seed : int
        The run's seed (``>= 0``).

    Examples
    --------
    >>> s = Seeds(0)
    >>> s["gio"] == Seeds(0).gio
    True
    """

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        children = np.random.SeedSequence(self.seed).spawn(len(SEED_NAMES))
        self._values = {n: int(c.generate_state(1)[0]) for n, c in zip(SEED_NAMES, children, strict=True)}

    def __getitem__(self, name: str) -> int:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    @property
    def pool_kmeans(self) -> int:
        return self._values["pool_kmeans"]

    @property
    def target_kmeans(self) -> int:
        return self._values["target_kmeans"]

    @property
    def gio(self) -> int:
        return self._values["gio"]

    @property
    def explode(self) -> int:
        return self._values["explode"]

    @property
    def report(self) -> int:
        return self._values["report"]

    def generator(self, name: str) -> np.random.Generator:
        """A fresh :class:`numpy.random.Generator` for phase ``name``."""
        return np.random.default_rng(self[name])

    def as_dict(self) -> dict[str, int]:
        """The sub-seeds as a plain dict (the manifest's ``sub_seeds``)."""
        return dict(self._values)
