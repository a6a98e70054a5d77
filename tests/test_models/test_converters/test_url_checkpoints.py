# Copyright (c) um-mae contributors. All rights reserved.
"""Checkpoints from http(s) URLs: read by the same safe reader as local
files, whichever way they come in (``read_checkpoint``, mmengine's
``CheckpointLoader`` behind ``load_from`` / ``resume``, the ``Pretrained``
and ``CheckedPretrained`` initializers, ``tools/train.py``); cached by the
whole URL; a failed or partial download is never cached and is reported in
one line naming the URL.

The files are served by a local HTTP server on 127.0.0.1 that the tests
start (a thread; it stops when the module's tests end).
"""
import http.server
import io
import os
import os.path as osp
import socket
import threading

import pytest
import torch
from conftest import PVT_FIXTURE_ARCH

from um_mae.engine.checkpoint import register_checkpoint_loader
from um_mae.models.converters import cached_download_path, read_checkpoint

REPO = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
UMMAE_DEMO = 'configs/pretrain/ummae/ummae_pvt-demo_1xb8-10e_demo-128px.py'


class _RunsCode:
    """Unpickling this makes the directory ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker, )


def _saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


class _Handler(http.server.BaseHTTPRequestHandler):
    #: path -> body; ``(body, claimed length)`` sends a short body
    routes: dict = {}
    hits: dict = {}

    def do_GET(self):  # noqa: N802 - the http.server API
        self.hits[self.path] = self.hits.get(self.path, 0) + 1
        body = self.routes.get(self.path)
        if body is None:
            self.send_error(404)
            return
        length = len(body)
        if isinstance(body, tuple):
            body, length = body
        self.send_response(200)
        self.send_header('Content-Length', str(length))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    marker = str(tmp_path_factory.mktemp('marker') / 'code_ran')
    _Handler.routes = {
        '/v1/model.pth': _saved({'w': torch.full((2, ), 1.0)}),
        '/v2/model.pth': _saved({'w': torch.full((2, ), 2.0)}),
        '/crafted.pth': _saved({
            'w': torch.ones(2),
            'x': _RunsCode(marker)
        }),
    }
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Handler)
    httpd.timeout = 10
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield dict(
        url=f'http://127.0.0.1:{httpd.server_address[1]}', marker=marker)
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=10)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A fresh torch hub cache for each test."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'hub'))
    monkeypatch.delenv('UM_MAE_UNSAFE_PICKLE', raising=False)
    return str(tmp_path / 'hub')


def test_cache_is_keyed_by_the_whole_url(server, hub):
    url = server['url']
    assert read_checkpoint(f'{url}/v1/model.pth')['w'].tolist() == [1, 1]
    # same file name, other URL: another file, not v1's cached copy
    assert read_checkpoint(f'{url}/v2/model.pth')['w'].tolist() == [2, 2]
    hits = _Handler.hits['/v1/model.pth']
    assert read_checkpoint(f'{url}/v1/model.pth')['w'].tolist() == [1, 1]
    assert _Handler.hits['/v1/model.pth'] == hits  # served from the cache
    assert cached_download_path(f'{url}/v1/model.pth').startswith(hub)


def test_crafted_pickle_from_a_url_runs_no_code(server, hub):
    from mmengine.model.weight_init import PretrainedInit
    from mmengine.runner import CheckpointLoader

    from um_mae.models.backbones import UMPVT
    from um_mae.models.converters import CheckedPretrainedInit
    register_checkpoint_loader()
    url = f'{server["url"]}/crafted.pth'
    module = torch.nn.Linear(2, 2)
    # CheckedPretrained loads into our backbones only
    backbone = UMPVT(arch=PVT_FIXTURE_ARCH)
    readers = [
        lambda: read_checkpoint(url),
        lambda: CheckpointLoader.load_checkpoint(url),  # load_from, resume
        lambda: PretrainedInit(checkpoint=url)(module),  # init_cfg
        lambda: CheckedPretrainedInit(checkpoint=url)(backbone),
        lambda: CheckpointLoader.load_checkpoint('s3://bucket/crafted.pth'),
    ]
    for read in readers:
        with pytest.raises(ValueError) as e:
            read()
        assert 'UM_MAE_UNSAFE_PICKLE=1' in str(
            e.value) or ('download the file and pass its local path' in str(
                e.value))
    assert not osp.exists(server['marker']), 'unpickling ran code'


def _train_tool():
    import importlib.util
    path = osp.join(REPO, 'tools', 'train.py')
    spec = importlib.util.spec_from_file_location('train_tool', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_tool_load_from_a_crafted_url(server, hub, tmp_path, capsys,
                                            monkeypatch):
    from um_mae.toolkit.demo_data import make_pretrain_images
    make_pretrain_images(str(tmp_path / 'images'), num_images=8, size=128)
    url = f'{server["url"]}/crafted.pth'
    monkeypatch.chdir(REPO)
    with pytest.raises(SystemExit) as e:  # tools/train.py, in this process
        _train_tool().main([
            UMMAE_DEMO, '--work-dir',
            str(tmp_path / 'w'), '--data-root',
            str(tmp_path / 'images'), '--cfg-options', f'load_from={url}',
            'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False'
        ])
    out = capsys.readouterr().err
    assert e.value.code == 1, out[-3000:]
    assert out.startswith('error: ') and 'UM_MAE_UNSAFE_PICKLE=1' in out
    assert not osp.exists(server['marker']), 'unpickling ran code'


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_failed_downloads_name_the_url_and_are_not_cached(server, hub):
    url = server['url']
    body = _Handler.routes['/v1/model.pth']
    _Handler.routes['/partial.pth'] = (body[:100], len(body))
    cases = [
        (f'{url}/missing.pth', 'HTTP 404'),
        (f'http://127.0.0.1:{_closed_port()}/model.pth', 'refused'),
        (f'{url}/partial.pth', f'after 100 of {len(body)} bytes'),
    ]
    for bad, reason in cases:
        with pytest.raises(ValueError) as e:
            read_checkpoint(bad)
        msg = str(e.value)
        assert msg.startswith(f'cannot download {bad} (') and reason in msg
        assert 'pass its local path' in msg and '\n' not in msg
        assert not osp.exists(cached_download_path(bad))
        folder = osp.dirname(cached_download_path(bad))
        assert not osp.isdir(folder) or not os.listdir(folder)
    # the server recovers: the next read fetches the whole file
    _Handler.routes['/partial.pth'] = body
    assert read_checkpoint(f'{url}/partial.pth')['w'].tolist() == [1, 1]
