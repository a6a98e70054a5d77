# Copyright (c) um-mae contributors. All rights reserved.
"""The one key-renaming helper every converter uses."""
import re
from collections import OrderedDict
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from torch import Tensor

__all__ = ['Rule', 'rename_keys', 'strip_prefix', 'unwrap']

# (regular expression matched at the start of a key, replacement); a None
# replacement drops the key on purpose
Rule = Tuple[str, Optional[str]]


def strip_prefix(state_dict: Dict[str, Tensor],
                 prefix: str) -> 'OrderedDict[str, Tensor]':
    """The keys under ``prefix``, with the prefix removed.

    Args:
        state_dict (dict): Key -> tensor.
        prefix (str): E.g. ``'backbone.'``; ``''`` keeps every key.

    Returns:
        OrderedDict: The selected entries.
    """
    return OrderedDict((k[len(prefix):], v) for k, v in state_dict.items()
                       if k.startswith(prefix))


def rename_keys(
    state_dict: Dict[str, Tensor],
    rules: Sequence[Rule],
    unmatched: Optional[List[str]] = None,
    dropped: Optional[List[str]] = None,
) -> 'OrderedDict[str, Tensor]':
    """Rename keys with the first rule whose pattern matches.

    Tensors are passed through unchanged (the same objects), so a caller
    can tell by identity which source key ended up where.

    Args:
        state_dict (dict): Key -> tensor.
        rules (Sequence[tuple]): ``(pattern, replacement)`` pairs; the
            pattern is matched at the start of the key (:func:`re.match`)
            and replaced once (``re.sub`` syntax, e.g. ``r'layers.\\1.'``);
            a None replacement drops the key.
        unmatched (list, optional): Collects the keys no rule matched
            (they are left out of the result). Defaults to None.
        dropped (list, optional): Collects the keys a None rule dropped.
            Defaults to None.

    Returns:
        OrderedDict: The renamed entries, in the source order.
    """
    compiled = [(re.compile(p), r) for p, r in rules]
    out = OrderedDict()
    for key, value in state_dict.items():
        for pattern, repl in compiled:
            if pattern.match(key):
                if repl is None:
                    if dropped is not None:
                        dropped.append(key)
                else:
                    out[pattern.sub(repl, key, count=1)] = value
                break
        else:
            if unmatched is not None:
                unmatched.append(key)
    return out


def unwrap(
    checkpoint: dict, containers: Iterable[str] = ('state_dict', 'model')
) -> 'OrderedDict[str, Tensor]':
    """The state dict of a checkpoint, without ``module.`` prefixes.

    Args:
        checkpoint (dict): A runner checkpoint (``'state_dict'``), an
            official one (``'model'``) or a bare state dict.
        containers (Iterable[str]): Entries that hold the state dict, tried
            in order. Defaults to ``('state_dict', 'model')``.

    Returns:
        OrderedDict: Key -> tensor (other values are left out).
    """
    if not isinstance(checkpoint, dict):
        raise TypeError(f'a checkpoint must hold a dict, got '
                        f'{type(checkpoint).__name__}; save the model with '
                        'torch.save(model.state_dict(), path)')
    for key in containers:
        if isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    return OrderedDict((re.sub(r'^module\.', '', k), v)
                       for k, v in checkpoint.items() if isinstance(v, Tensor))
