# Copyright (c) um-mae contributors. All rights reserved.
from .eager_update import CompilableSimMIM, EagerUpdateMixin
from .reconstructing_mae import ReconstructingMAE
from .ummae import UMMAE
from .ummae_vit import UMMAEViT

__all__ = [
    'UMMAE', 'UMMAEViT', 'EagerUpdateMixin', 'CompilableSimMIM',
    'ReconstructingMAE'
]
