# Copyright (c) um-mae contributors. All rights reserved.
"""A checkpoint hook that never leaves a run without a loadable checkpoint.

mmengine's ``CheckpointHook`` deletes the oldest checkpoint *before* it
writes the new one, writes the new one straight into its final name and
rewrites ``last_checkpoint`` in place. With ``max_keep_ckpts=1`` a job
killed while saving has lost every checkpoint, and ``last_checkpoint`` can
be left empty or point at a truncated file. :class:`AtomicCheckpointHook`
keeps mmengine's options and file names and changes the order:

1. write the new checkpoint to ``.<name>.<pid>-<random>.tmp`` and fsync it
   (a failed write, e.g. a full disk, removes the temporary and names the
   file and the last complete checkpoint);
2. keep it only once the next training iteration has passed
   :class:`~um_mae.engine.FiniteLossHook` (finite loss and gradient norm;
   after the last iteration: finite weights): rename it to its name,
   replace ``last_checkpoint`` atomically;
3. only then delete checkpoints beyond ``max_keep_ckpts``.

A checkpoint that already holds a diverged update is thus never kept.

Temporaries left by a killed save are removed when training starts; their
names are unique (process id and a random part), and the main process holds
a lock on the work dir for the whole run (:class:`WorkDirLock`): a second
run in the same work dir stops, naming the running one, and a run that does
not resume stops instead of overwriting an earlier run's checkpoints.
"""
import os
import os.path as osp
import uuid

import torch
from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook
from mmpretrain.registry import HOOKS

from .atomic_save import TMP_SUFFIX, atomic_write, remove_stale_temporaries
from .work_dir_lock import WorkDirInUseError, WorkDirLock

__all__ = ['AtomicCheckpointHook']


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` that writes new checkpoints before deleting old.

    Takes exactly the arguments of :class:`mmengine.hooks.CheckpointHook`.
    Checkpoints on other storage than the local disk are saved by
    mmengine's own procedure.
    """

    def _claim_work_dir(self, runner) -> None:
        """Lock the work dir of a training run (an evaluation with
        ``tools/test.py`` in the same dir, e.g. while training goes on, needs
        no lock) and refuse to overwrite an earlier run's checkpoints."""
        if not is_main_process():
            return
        self._lock = WorkDirLock(runner.work_dir)
        self._lock.acquire()
        last = osp.join(runner.work_dir, 'last_checkpoint')
        if not getattr(runner, '_resume', False) and osp.isfile(last):
            self._lock.release()
            with open(last) as f:
                previous = f.read().strip()
            raise WorkDirInUseError(
                f'work dir {runner.work_dir} holds the checkpoints of an '
                f'earlier run (last: {previous}); this run would overwrite '
                'them. Continue that run with --resume, or choose another '
                '--work-dir (or delete its checkpoints and last_checkpoint '
                'to start over there)')

    def after_run(self, runner) -> None:
        super().after_run(runner)
        lock = getattr(self, '_lock', None)
        if lock is not None:
            lock.release()

    def before_train(self, runner) -> None:
        self._claim_work_dir(runner)
        super().before_train(runner)
        if is_main_process() and self._is_local() and osp.isdir(self.out_dir):
            for path in remove_stale_temporaries(self.out_dir):
                runner.logger.warning(
                    f'removed {path}, left by a save that was interrupted')

    def _is_local(self) -> bool:
        return self.file_client_args is None and isinstance(
            self.file_backend, LocalBackend)

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        if not self._is_local():
            return super()._save_checkpoint_with_step(runner, step, meta)
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = osp.join(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        expired = []
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                expired.append(self.keep_ckpt_ids[0])
            self.keep_ckpt_ids.append(step)  # a deque of max_keep_ckpts
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))

        self._keep_pending(runner)  # a save without an iteration since
        # unique, so that no other writer can clash with it
        tmp_name = (f'.{filename}.{os.getpid()}-{uuid.uuid4().hex[:8]}'
                    f'{TMP_SUFFIX}')
        previous = self._last_complete(runner)
        tmp = osp.join(self.out_dir, tmp_name)
        try:
            runner.save_checkpoint(
                self.out_dir,
                tmp_name,
                self.file_client_args,
                save_optimizer=self.save_optimizer,
                save_param_scheduler=self.save_param_scheduler,
                meta=meta,
                by_epoch=self.by_epoch,
                backend_args=self.backend_args,
                **self.args)
            if not is_main_process():
                return
            with open(tmp, 'rb') as f:
                os.fsync(f.fileno())
        except OSError as e:  # a full disk, ...: name the file, clean up
            if osp.exists(tmp):
                os.remove(tmp)
            kept = (f'the last complete checkpoint is {previous}'
                    if previous else 'no checkpoint of this run was written')
            raise OSError(e.errno, f'{e.strerror or e}; {kept}',
                          self.last_ckpt) from e
        # kept once the next iteration has passed FiniteLossHook
        self._pending = (tmp, self.last_ckpt, expired)

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        # FiniteLossHook (a higher priority) has checked this iteration,
        # the first one that started from the pending checkpoint's weights
        self._keep_pending(runner)
        super().after_train_iter(runner, batch_idx, data_batch, outputs)

    def after_train(self, runner) -> None:
        super().after_train(runner)
        # the last checkpoint has no next iteration: check its weights
        model = getattr(runner.model, 'module', runner.model)
        if all(torch.isfinite(p).all() for p in model.parameters()):
            self._keep_pending(runner)
        else:
            self.discard_pending(runner)

    def discard_pending(self, runner) -> None:
        """Drop the checkpoint not yet kept (its weights diverged)."""
        pending, self._pending = getattr(self, '_pending', None), None
        if pending is not None and osp.exists(pending[0]):
            os.remove(pending[0])
            runner.logger.warning(
                f'{pending[1]} was not kept: the iteration after it was '
                'not finite')

    def _keep_pending(self, runner) -> None:
        pending, self._pending = getattr(self, '_pending', None), None
        if pending is None:
            return
        tmp, path, expired = pending
        os.replace(tmp, path)
        # the pointer names the new file before any old one is deleted, so
        # a kill in between never leaves it naming a deleted file
        atomic_write(path.encode(), osp.join(runner.work_dir,
                                             'last_checkpoint'))
        for old in expired:
            old_path = osp.join(self.out_dir, self.filename_tmpl.format(old))
            if osp.isfile(old_path) and old_path != path:
                os.remove(old_path)

    @staticmethod
    def _last_complete(runner):
        """The checkpoint ``last_checkpoint`` names, if it exists."""
        pointer = osp.join(runner.work_dir, 'last_checkpoint')
        if not osp.isfile(pointer):
            return None
        with open(pointer) as f:
            path = f.read().strip()
        return path if osp.isfile(path) else None
