# Copyright (c) um-mae contributors. All rights reserved.
"""README.md, CHANGELOG.md and docs/*.md: links resolve, commands are run.

Every relative link (and its ``#anchor``) must name a file of the repository
(and a heading of it). Every command of a ``bash`` block must be either run
by a named test (which must exist) or listed with the reason no test can run
it; a new command in the docs fails here until it is one or the other.
"""
import ast
import glob
import os.path as osp
import re

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DOCS = ['README.md', 'CHANGELOG.md'] + sorted(
    osp.relpath(p, REPO) for p in glob.glob(osp.join(REPO, 'docs', '*.md')))

# command (a regular expression matched at its start) -> the test that runs
# it, at the documented or a smaller size
RUN_BY = {
    r'python tools/gpu_check\.py --device cpu ':
    'tests/test_tools/test_gpu_check.py::test_cpu_mode_writes_the_report',
    r'python tools/make_demo_data\.py( pretrain)?$':
    'tests/test_tools/test_train.py::'
    'test_quick_start_runs_clean_and_a_rerun_says_done',
    r'python tools/train\.py configs/pretrain/ummae/ummae_pvt-demo_':
    'tests/test_tools/test_train.py::'
    'test_quick_start_runs_clean_and_a_rerun_says_done',
    r'python tools/check_install\.py':
    'tests/test_tools/test_check_install.py::'
    'test_ops_run_on_cpu_and_cuda_is_reported',
    r'python tools/model_converters/ummae_official_to_ours\.py':
    'tests/test_tools/test_model_converters.py::'
    'test_pretrain_checkpoint_to_ummae',
    r'python tools/benchmark_pretrain\.py':
    'tests/test_tools/test_benchmark.py::test_tool_writes_table_csv_and_png',
    r'bash tools/dist_train\.sh CONFIG 8 ':
    'tests/test_tools/test_train.py::test_dist_train_with_syncbn_on_cpu',
    r'bash tools/dist_test\.sh':
    'tests/test_tools/test_train.py::test_dist_test_launches_test_py',
    r'python tools/train\.py configs/pretrain/ummae/ummae_pvt-small_.* '
    r'--data-root DIR':
    'tests/test_shipped_recipes.py::test_shipped_recipe_trains_and_tests',
    r'python tools/train\.py CONFIG \[':
    'tests/test_tools/test_train.py::test_train_mmpretrain_then_resume',
    r'python tools/test\.py CONFIG CHECKPOINT \[':
    'tests/test_tools/test_train.py::test_train_and_test_dense',
    r'python tools/check_dataset\.py CONFIG --data-root DIR':
    'tests/test_toolkit/test_checks.py::test_config_mode_on_a_shipped_config',
    r'python tools/(train|test)\.py CONFIG (work_dirs/\S+ )?--data-root DIR':
    'tests/test_shipped_recipes.py::test_shipped_recipe_trains_and_tests',
    r'python tools/(train|test)\.py configs/det/gfl/gfl_pvt-demo_':
    'tests/test_tools/test_train.py::'
    'test_gfl_demo_untrained_scores_nothing_and_test_py_says_so',
    r'python tools/make_demo_data\.py pretrain coco':
    'tests/test_tools/test_simple_pyramid_demo.py::'
    'test_demo_stage1_then_stage2',
    r'python tools/train\.py configs/pretrain/mae/mae_vit-tiny-p16_1xb8-':
    'tests/test_tools/test_train.py::test_train_mmpretrain_then_resume',
    r'S=configs/det/faster_rcnn/faster-rcnn_vit-demo_':
    'tests/test_tools/test_simple_pyramid_demo.py::'
    'test_demo_stage1_then_stage2',
    r'python tools/(train|test)\.py \$\{S\}_stage[12]-':
    'tests/test_tools/test_simple_pyramid_demo.py::'
    'test_demo_stage1_then_stage2',
    r'python tools/train\.py configs/det/faster_rcnn/faster-rcnn_vit-base-':
    'tests/test_shipped_recipes.py::test_shipped_recipe_trains_and_tests',
    r'python tools/visualize_masks\.py':
    'tests/test_tools/test_visualize.py::test_visualize_masks_png',
    r'python tools/visualize_reconstruction\.py':
    'tests/test_tools/test_visualize.py::test_visualize_reconstruction_png',
    r'python tools/visualize_feature_pyramid\.py':
    'tests/test_tools/test_visualize_feature_pyramid.py::'
    'test_tool_writes_the_pyramid_png',
}

# command -> why no test runs it
NOT_RUN = {
    r'(\S+=\S+ )*(/usr/bin/time .* )?bash tools/install\.sh':
    'installs packages into the environment (CI runs it in a fresh one)',
    r'python -m pytest tests': 'the test suite itself (CI runs it)',
    r'git clone |cd /tmp/fresh|python3\.11 -m venv |source /tmp/venv/':
    'set-up of a fresh clone and venv for the install measurement',
    r'NNODES=2 ': 'needs two machines',
    r'GPUS=16 bash tools/slurm_train\.sh': 'needs a slurm cluster',
    r'python tools/gpu_check\.py( --peak-tflops \d+)?$':
    'needs a CUDA GPU (its CPU mode is run by tests/test_tools/'
    'test_gpu_check.py)',
    r'pip (download|install) ':
    'downloads / installs packages for a GPU machine without internet',
}


def read(doc):
    with open(osp.join(REPO, doc)) as f:
        return f.read()


def slug(heading):
    """GitHub's anchor of a markdown heading."""
    text = re.sub(r'[^\w\- ]', '', heading.strip().lower())
    return text.replace(' ', '-')


def anchors(doc):
    text = re.sub(r'```.*?```', '', read(doc), flags=re.S)
    return {slug(h) for h in re.findall(r'^#+ (.*)$', text, flags=re.M)}


def links(doc):
    """(target, anchor) of every relative link and image of ``doc``."""
    text = re.sub(r'```.*?```', '', read(doc), flags=re.S)
    for target in re.findall(r'\]\(([^)\s]+)\)', text):
        if re.match(r'[a-z]+:', target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition('#')
        yield path, anchor


def commands(doc):
    """Every command of the ``bash`` blocks of ``doc``, one per line (``&&``
    chains split, continuation lines joined, comments dropped)."""
    for block in re.findall(r'```bash\n(.*?)```', read(doc), flags=re.S):
        for line in block.replace('\\\n', ' ').splitlines():
            line = re.sub(r'\s+', ' ', line.split(' #')[0]).strip()
            if line and not line.startswith('#'):
                yield from (part.strip() for part in line.split('&&'))


def test_the_docs_are_found():
    assert {
        'README.md', 'CHANGELOG.md', 'docs/install.md', 'docs/transfer.md'
    } <= set(DOCS)


@pytest.mark.parametrize('doc', DOCS)
def test_relative_links_resolve(doc):
    broken = []
    for path, anchor in links(doc):
        target = osp.normpath(osp.join(osp.dirname(doc), path)) \
            if path else doc
        if not osp.exists(osp.join(REPO, target)):
            broken.append(f'{path}: no such file')
            continue
        if anchor and target.endswith('.md') and \
                anchor not in anchors(target):
            broken.append(f'{path}#{anchor}: no such heading in {target}')
    assert not broken, f'{doc}: {broken}'


def readme_config_patterns():
    """The config cells of the README's recipe table, as glob patterns
    (``{a,b}`` alternatives expanded)."""
    table = read('README.md').split('## Recipes', 1)[1].split('\n## ', 1)[0]
    for cell in re.findall(r'^\|[^|]*\|[^|]*\| `([^`]+\.py)` \|', table,
                           flags=re.M):
        todo = [cell]
        while todo:
            pattern = todo.pop()
            m = re.search(r'\{([^{}]*)\}', pattern)
            if not m:
                yield pattern
                continue
            todo += [
                pattern[:m.start()] + alt + pattern[m.end():]
                for alt in m.group(1).split(',')
            ]


def test_readme_recipe_table_names_shipped_configs():
    """Every config of the README's recipe table exists (a renamed recipe
    fails here; planted: the old ``lsj-1024`` name of the GFL ViT-B row)."""
    patterns = list(readme_config_patterns())
    assert len(patterns) >= 10, patterns
    missing = [
        p for p in patterns
        if not glob.glob(osp.join(REPO, 'configs', p))
    ]
    assert not missing, missing


def _test_exists(node_id):
    path, name = node_id.split('::')
    tree = ast.parse(read(path))
    return any(
        isinstance(n, ast.FunctionDef) and n.name == name
        for n in ast.walk(tree))


def test_every_command_is_run_by_a_test_or_says_why_not():
    unaccounted, used = [], set()
    for doc in DOCS:
        for command in commands(doc):
            hits = [p for p in {**RUN_BY, **NOT_RUN} if re.match(p, command)]
            if len(hits) != 1:
                unaccounted.append(f'{doc}: {command!r} matches {hits}')
            used.update(hits)
    assert not unaccounted, unaccounted
    assert not set(RUN_BY) - used - set(NOT_RUN), 'stale RUN_BY entries'
    assert not set(NOT_RUN) - used, 'stale NOT_RUN entries'
    missing = [t for t in set(RUN_BY.values()) if not _test_exists(t)]
    assert not missing, missing
