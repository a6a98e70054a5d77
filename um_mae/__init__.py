"""um_mae: Uniform Masking MAE for pyramid vision transformers."""
from .version import __version__

__all__ = ['__version__']
