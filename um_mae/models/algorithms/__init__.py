# Copyright (c) um-mae contributors. All rights reserved.
from .ummae import UMMAE
from .ummae_vit import UMMAEViT

__all__ = ['UMMAE', 'UMMAEViT']
