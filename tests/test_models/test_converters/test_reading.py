# Copyright (c) um-mae contributors. All rights reserved.
"""read_checkpoint: runner checkpoints and weights load, nothing runs code,
and every file that is no checkpoint gets one line naming it and the fix."""
import os
import pickle
import random
import zipfile

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub

from um_mae.models.converters import (UNSAFE_PICKLE_ENV, read_checkpoint,
                                      runner_checkpoint_globals)


class _RunsCode:
    """Unpickling this makes a directory: a visible side effect."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker, )


def _runner_checkpoint():
    """What mmengine 0.10.7's runner saves, plus our RNGStateHook."""
    hub = MessageHub.get_instance(f'reading-{random.random()}')
    for i in range(3):
        hub.update_scalar('train/loss', 1.0 / (i + 1))
        hub.update_scalar('train/lr', np.float64(1e-3))
    hub.update_info('iter', 3)
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.LinearLR(optimizer)
    return dict(
        meta=dict(
            epoch=1,
            iter=3,
            cfg='model = dict()',
            seed=0,
            dataset_meta=dict(classes=('a', 'b')),
            mmengine_version='0.10.7'),
        state_dict=model.state_dict(),
        message_hub=hub.state_dict(),
        optimizer=optimizer.state_dict(),
        param_schedulers=[scheduler.state_dict()],
        loss_scaler=dict(scale=65536.0, growth_factor=2.0, _growth_tracker=0),
        rng_state=dict(
            torch=torch.get_rng_state(),
            numpy=np.random.get_state(),
            python=random.getstate()))


def test_runner_checkpoint_round_trip(tmp_path):
    ckpt = _runner_checkpoint()
    path = str(tmp_path / 'epoch_1.pth')
    torch.save(ckpt, path)
    with torch.serialization.safe_globals(runner_checkpoint_globals()):
        # the allow-list covers every global such a checkpoint holds
        assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []
    loaded = read_checkpoint(path)
    buffer = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer)
    assert buffer.mean() == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    numpy_state = loaded['rng_state']['numpy']
    assert numpy_state[0] == 'MT19937'
    np.testing.assert_array_equal(numpy_state[1],
                                  ckpt['rng_state']['numpy'][1])
    assert loaded['rng_state']['python'] == ckpt['rng_state']['python']
    assert loaded['optimizer']['param_groups'] == \
        ckpt['optimizer']['param_groups']
    assert torch.equal(loaded['state_dict']['weight'],
                       ckpt['state_dict']['weight'])
    # the allow-list is only active while reading
    assert HistoryBuffer not in torch.serialization.get_safe_globals()


def test_official_training_args_are_read(tmp_path):
    """MAE / DeiT / UM-MAE training scripts store argparse args."""
    import argparse
    path = str(tmp_path / 'checkpoint-799.pth')
    torch.save(
        dict(
            model={'w': torch.ones(1)},
            args=argparse.Namespace(lr=1e-3, model='vit')), path)
    assert read_checkpoint(path)['args'].model == 'vit'


@pytest.mark.parametrize('how', ['torch.save', 'pickle'])
def test_pickle_that_runs_code_is_refused(tmp_path, how, monkeypatch):
    marker = str(tmp_path / 'code-ran')
    path = str(tmp_path / 'evil.pth')
    payload = {'x': _RunsCode(marker), 'state_dict': {'w': torch.ones(1)}}
    if how == 'torch.save':
        torch.save(payload, path)
    else:
        with open(path, 'wb') as f:
            pickle.dump(payload, f, protocol=2)
    monkeypatch.delenv(UNSAFE_PICKLE_ENV, raising=False)
    with pytest.raises(ValueError) as info:
        read_checkpoint(path)
    msg = str(info.value)
    assert not os.path.exists(marker)  # nothing ran
    assert '\n' not in msg
    assert msg.startswith(f'{path} holds pickled Python objects')
    assert 'posix.mkdir' in msg
    assert f'set {UNSAFE_PICKLE_ENV}=1' in msg

    if how == 'torch.save':
        # the explicit opt-in unpickles it (and so runs its code)
        monkeypatch.setenv(UNSAFE_PICKLE_ENV, '1')
        read_checkpoint(path)
        assert os.path.isdir(marker)


def test_getattr_is_limited_to_history_buffer(tmp_path):
    """HistoryBuffer pickles getattr(HistoryBuffer, 'mean'); a getattr on
    anything else must not resolve."""

    class Sneaky:

        def __init__(self, owner, name):
            self.owner, self.name = owner, name

        def __reduce__(self):
            return getattr, (self.owner, self.name)

    for owner, name in ((HistoryBuffer, '__init__'), (np.ndarray, 'tofile')):
        path = str(tmp_path / 'sneaky.pth')
        torch.save({'x': Sneaky(owner, name)}, path)
        with pytest.raises(ValueError) as info:
            read_checkpoint(path)
        assert f'refused getattr({owner.__name__!r}, {name!r})' in str(
            info.value)


def test_safetensors(tmp_path):
    from safetensors.torch import save_file
    path = str(tmp_path / 'model.safetensors')
    weights = {'a': torch.randn(2, 3), 'b': torch.arange(4)}
    save_file(weights, path)
    loaded = read_checkpoint(path)
    assert set(loaded) == {'a', 'b'} and torch.equal(loaded['a'], weights['a'])


def _bad_files(tmp_path):
    from safetensors.torch import save_file
    files = {}
    files['random'] = tmp_path / 'random.pth'
    files['random'].write_bytes(bytes(range(7, 250)) * 4)
    # 0x80 is pickle's PROTO opcode; followed by no protocol number (2-5)
    # it is not torch's legacy format (1 in 256 random files start so)
    files['random-0x80'] = tmp_path / 'noise.pth'
    files['random-0x80'].write_bytes(b'\x80[' + bytes(range(7, 250)))
    files['text'] = tmp_path / 'notes.pth'
    files['text'].write_text('model weights are on the server\n')
    files['empty'] = tmp_path / 'empty.pth'
    files['empty'].write_bytes(b'')
    full = tmp_path / 'full.pth'
    torch.save({'w': torch.randn(100, 100)}, full)
    files['truncated'] = tmp_path / 'truncated.pth'
    files['truncated'].write_bytes(full.read_bytes()[:20000])
    files['zip'] = tmp_path / 'images.zip'
    with zipfile.ZipFile(files['zip'], 'w') as z:
        z.writestr('a.txt', 'x')
    sf = tmp_path / 'ok.safetensors'
    save_file({'w': torch.randn(100, 100)}, str(sf))
    files['safetensors-truncated'] = tmp_path / 'cut.safetensors'
    files['safetensors-truncated'].write_bytes(sf.read_bytes()[:2000])
    files['safetensors-garbage'] = tmp_path / 'garbage.safetensors'
    files['safetensors-garbage'].write_bytes(b'<html>not found</html>')
    return {k: str(v) for k, v in files.items()}


@pytest.mark.parametrize('kind,found,fix', [
    ('random', 'is not a checkpoint (found 972 bytes of unknown binary',
     'pass a PyTorch checkpoint'),
    ('random-0x80', 'is not a checkpoint (found 245 bytes of unknown',
     'pass a PyTorch checkpoint'),
    ('text', "is not a checkpoint (found a text file starting with 'model "
     "weights are on the server')", 'pass a PyTorch checkpoint'),
    ('empty', 'is not a checkpoint (found an empty file)',
     'pass a PyTorch checkpoint'),
    ('truncated', 'is a truncated or corrupt PyTorch checkpoint',
     'copy or download it again'),
    ('zip', 'is a zip archive but not a PyTorch checkpoint',
     'pass the checkpoint file'),
    ('safetensors-truncated', 'is a corrupt or truncated .safetensors file',
     'download it again'),
    ('safetensors-garbage', 'is not a valid .safetensors file (found a '
     "text file starting with '<html>not found</html>')", 'download it'),
])
def test_bad_files_get_one_line(tmp_path, kind, found, fix):
    path = _bad_files(tmp_path)[kind]
    with pytest.raises(ValueError) as info:
        read_checkpoint(path)
    msg = str(info.value)
    assert '\n' not in msg
    assert msg.startswith(path)
    assert found in msg and fix in msg


def test_missing_path_directory_and_scheme(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        read_checkpoint(str(tmp_path / 'nope.pth'))
    with pytest.raises(ValueError, match='is a directory'):
        read_checkpoint(str(tmp_path))
    with pytest.raises(ValueError, match='download the file and pass'):
        read_checkpoint('s3://bucket/model.pth')


def test_overwritten_tensor_bytes_fail_the_crc_check(tmp_path):
    """Bytes changed inside an intact zip are refused, naming the tensor."""
    path = str(tmp_path / 'ckpt.pth')
    state = {
        'a': torch.zeros(64),
        'b': torch.arange(64, dtype=torch.float32),
        'c': torch.ones(64)
    }
    torch.save(dict(state_dict=state, meta=dict(iter=3)), path)
    assert read_checkpoint(path)['state_dict']['b'].tolist() == list(
        range(64))
    # find b's bytes in the (uncompressed) archive and overwrite some
    with open(path, 'rb') as f:
        data = bytearray(f.read())
    start = bytes(data).index(state['b'].numpy().tobytes())
    data[start + 40:start + 48] = b'\xff' * 8
    with open(path, 'wb') as f:
        f.write(data)
    assert zipfile.ZipFile(path).namelist()  # still a valid zip
    assert torch.load(path)['state_dict']['b'].isnan().any()  # torch takes it
    with pytest.raises(ValueError) as info:
        read_checkpoint(path)
    msg = str(info.value)
    assert msg == (f"{path} is corrupt: the data of 'state_dict.b' does not "
                   'match the checksum (CRC-32) stored in the file; copy or '
                   'download it again')
