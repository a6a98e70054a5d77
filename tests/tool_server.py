# Copyright (c) um-mae contributors. All rights reserved.
"""Run ``tools/*.py`` scripts in processes forked from one warm interpreter.

Every launcher run of the tests used to start a fresh ``python`` that
imported torch, mmengine and the three toolboxes again (about 7 CPU-seconds
each, most of a one-iteration recipe run). Here one server process imports
them once; each request forks a child of it that runs the script file itself
as ``__main__`` (``runpy``) with its own ``sys.argv``, working directory and
output files, and exits with the script's exit code. The launcher's own code
runs exactly as from a shell; only the already imported toolboxes are
shared. A run that changes the environment beyond the thread counts (e.g. a
``PYTHONPATH`` that blocks ``mmcv.ops``) still gets a fresh interpreter (see
``conftest.run_tool``).

Protocol: one JSON line per request on the server's stdin,
``{"argv": [...], "cwd": ..., "env": {...}, "out": FILE}``; the child writes
stdout + stderr to ``FILE`` and its exit code to ``FILE.rc``.
"""
import json
import os
import signal
import sys

#: environment variables a forked run may set (applied in the child)
FORKABLE_ENV = ('OMP_NUM_THREADS', 'MKL_NUM_THREADS')


def _keep_freed_memory() -> None:
    """Reuse freed memory in this run instead of handing it back.

    By default glibc maps each large block afresh (a feature map of a
    full-size detector is hundreds of MB) and unmaps it when it is freed,
    so every iteration pays the page faults of zeroing it again: 10.0 of
    the 48.6 CPU-seconds of a one-iteration Mask R-CNN ViT-B run at 1024 px
    are system time, 3.9 with ``M_MMAP_MAX = 0`` and a high
    ``M_TRIM_THRESHOLD`` (``mallopt(3)``; see docs/contributing.md). Results
    are the same; the run's peak memory grows (4.5 -> 6.0 GB there). Only
    for these short runs: a long-lived process (a pytest worker) would keep
    growing.
    """
    import ctypes
    import ctypes.util
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library('c')).mallopt
    except (OSError, AttributeError, TypeError):  # not glibc
        return
    mallopt(-4, 0)  # M_MMAP_MAX
    mallopt(-1, 2**31 - 1)  # M_TRIM_THRESHOLD


def _child(request: dict) -> int:
    """Run one script in this (forked) process; return its exit code."""
    import runpy
    import traceback
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    _keep_freed_memory()
    fd = os.open(request['out'], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    # fresh text streams: the parent's may hold locks taken at fork time
    sys.stdout = open(1, 'w', buffering=1, closefd=False)
    sys.stderr = open(2, 'w', buffering=1, closefd=False)
    os.chdir(request['cwd'])
    os.environ.update(request['env'])
    threads = request['env'].get('OMP_NUM_THREADS')
    if threads:
        import torch
        torch.set_num_threads(int(threads))
    script = request['argv'][0]
    sys.argv = list(request['argv'])
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    try:
        runpy.run_path(script, run_name='__main__')
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code,
                                    int) else (0 if e.code is None else 1)
        if not isinstance(e.code, (int, type(None))):
            print(e.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
        code = 1
    return code


#: torch, mmengine, um_mae and the toolboxes' models
TOOLBOXES = ('torch', 'mmengine.runner', 'mmpretrain.models', 'um_mae',
             'mmdet.models', 'mmseg.models')


def import_toolboxes(names=TOOLBOXES) -> None:
    """Import those of ``names`` that are installed."""
    import importlib
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:  # a pre-training-only install
            pass


#: what every launcher run imports besides the toolboxes' models (seen in a
#: profile of the forked runs): mmengine's ``is_installed`` and
#: ``collect_env`` (pkg_resources, setuptools' distutils), the toolboxes'
#: engines and the visualizer's matplotlib backend
RUN_IMPORTS = ('pkg_resources', 'setuptools', 'distutils.errors',
               'mmpretrain.engine', 'mmdet.engine', 'mmseg.engine',
               'matplotlib.backends.backend_agg')


def serve() -> None:
    """Import the toolboxes, then fork one child per request line."""
    import warnings
    import_toolboxes()
    with warnings.catch_warnings():  # pkg_resources' deprecation
        warnings.simplefilter('ignore')
        import_toolboxes(RUN_IMPORTS)
    import metafile_cache  # this file's folder is on sys.path
    metafile_cache.install()
    metafile_cache.warm()
    freeze_imports()
    # reap the children as they end (their CPU time counts for this
    # process, and so for the test session's)
    signal.signal(signal.SIGCHLD, _reap)
    print('ready', flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if os.fork() == 0:
            code = 1
            try:
                code = _child(request)
            finally:
                for stream in (sys.stdout, sys.stderr):
                    try:
                        stream.flush()
                    except Exception:
                        pass
                with open(request['out'] + '.rc.tmp', 'w') as f:
                    f.write(str(code))
                os.replace(request['out'] + '.rc.tmp', request['out'] + '.rc')
                os._exit(code)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    while True:  # the session ended: wait for the runs still going
        try:
            os.wait()
        except ChildProcessError:
            break


def freeze_imports() -> None:
    """Leave the objects that exist now (the imported toolboxes, about
    440k) out of every later garbage collection (``gc.freeze``).

    mmengine collects garbage each time it builds a dataset
    (``BaseDataset._serialize_data``), and Python's own full collections
    walk every object too: 0.23 s each with the toolboxes imported, under
    2 microseconds once they are frozen. In the server it also keeps the
    forked runs from copying the pages of those objects. Nothing is freed
    later that would have been freed otherwise: the modules stay loaded.
    """
    import gc
    gc.collect()
    gc.freeze()


def _reap(*_):
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


if __name__ == '__main__':
    serve()
