# Copyright (c) um-mae contributors. All rights reserved.
"""A checkpoint hook that never leaves a run without a loadable checkpoint.

mmengine's ``CheckpointHook`` deletes the oldest checkpoint *before* it
writes the new one, writes the new one straight into its final name and
rewrites ``last_checkpoint`` in place. With ``max_keep_ckpts=1`` a job
killed while saving has lost every checkpoint, and ``last_checkpoint`` can
be left empty or point at a truncated file. :class:`AtomicCheckpointHook`
keeps mmengine's options and file names and changes the order:

1. write the new checkpoint to ``.<name>.<pid>-<random>.tmp``, fsync it,
   rename it (a failed write, e.g. a full disk, removes the temporary and
   names the file and the last complete checkpoint);
2. replace ``last_checkpoint`` atomically;
3. only then delete checkpoints beyond ``max_keep_ckpts``.

Temporaries left by a killed save are removed when training starts; their
names are unique (process id and a random part), and the main process holds
a lock on the work dir for the whole run (:class:`WorkDirLock`): a second
run in the same work dir stops, naming the running one, and a run that does
not resume stops instead of overwriting an earlier run's checkpoints.
"""
import os
import os.path as osp
import uuid

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

    def before_run(self, runner) -> None:
        super().before_run(runner)
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
            os.replace(tmp, self.last_ckpt)
        except OSError as e:  # a full disk, ...: name the file, clean up
            if osp.exists(tmp):
                os.remove(tmp)
            kept = (f'the last complete checkpoint is {previous}'
                    if previous else 'no checkpoint of this run was written')
            raise OSError(e.errno, f'{e.strerror or e}; {kept}',
                          self.last_ckpt) from e
        # the pointer names the new file before any old one is deleted, so
        # a kill in between never leaves it naming a deleted file
        atomic_write(self.last_ckpt.encode(),
                     osp.join(runner.work_dir, 'last_checkpoint'))
        for old in expired:
            path = osp.join(self.out_dir, self.filename_tmpl.format(old))
            if osp.isfile(path) and path != self.last_ckpt:
                os.remove(path)

    @staticmethod
    def _last_complete(runner):
        """The checkpoint ``last_checkpoint`` names, if it exists."""
        pointer = osp.join(runner.work_dir, 'last_checkpoint')
        if not osp.isfile(pointer):
            return None
        with open(pointer) as f:
            path = f.read().strip()
        return path if osp.isfile(path) else None
