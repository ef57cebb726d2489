"""spa2v: spatial audio to spatially-aware video, and back."""

from spa2v.conventions import Camera
from spa2v.errors import InputError, Spa2vError

__version__ = "0.1.0"
__all__ = ["Camera", "InputError", "Spa2vError", "__version__"]
