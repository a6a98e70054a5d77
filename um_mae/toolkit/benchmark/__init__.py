# Copyright (c) um-mae contributors. All rights reserved.
"""Pre-training efficiency benchmark: step time, memory, encoder tokens.

:mod:`.measure` measures (timing, memory, FLOPs, compile, profile, data
pipeline; the module doc says how), :mod:`.driver` builds the configs'
entries and times them round-robin, also with other checkouts' code, and
:mod:`.report` turns the results into tables, CSV and charts. The configs
and batches come from :mod:`um_mae.toolkit.pretrain_inputs`.
"""
from .driver import (REPO_ROOT, CheckoutWorker, build_entry, checkout_config,
                     checkout_labels, entry_encoder_step, entry_recompiles,
                     entry_step, profile_step, run_benchmark, serve_worker,
                     time_interleaved)
from .measure import (PROFILE_KINDS, CompileStats, EncoderInputs,
                      EncoderTokenCounter, build_model_and_optimizer,
                      check_compile_support, compile_train_step, dynamo_counts,
                      encoder_step, flop_counter, measure_peak_memory,
                      measure_pipeline, model_state_bytes, profile_ops,
                      set_clock, train_step)
from .report import (TABLE_COLUMNS, BenchmarkResult, format_ab, format_compile,
                     format_markdown, format_pipeline, format_profile,
                     paired_ratios, plot_results, resolve_baselines, write_csv)

__all__ = [
    'build_entry', 'entry_step', 'entry_encoder_step', 'profile_step',
    'time_interleaved', 'entry_recompiles', 'REPO_ROOT', 'checkout_labels',
    'checkout_config', 'CheckoutWorker', 'serve_worker', 'run_benchmark',
    'build_model_and_optimizer', 'set_clock', 'train_step', 'EncoderInputs',
    'encoder_step', 'EncoderTokenCounter', 'flop_counter', 'model_state_bytes',
    'check_compile_support', 'CompileStats', 'compile_train_step',
    'dynamo_counts', 'PROFILE_KINDS', 'profile_ops', 'measure_pipeline',
    'measure_peak_memory', 'TABLE_COLUMNS', 'BenchmarkResult', 'paired_ratios',
    'resolve_baselines', 'format_markdown', 'format_ab', 'format_compile',
    'format_pipeline', 'format_profile', 'write_csv', 'plot_results'
]
