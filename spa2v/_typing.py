"""Shared type aliases (librosa style)."""

from __future__ import annotations

from os import PathLike
from typing import Union

import numpy as np
import numpy.typing as npt

ArrayLike = npt.ArrayLike
FloatArray = npt.NDArray[np.floating]
PathType = Union[str, "PathLike[str]"]
