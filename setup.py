"""um-mae: Uniform Masking MAE for pyramid vision transformers (OpenMMLab)."""
import os.path as osp

from setuptools import find_packages, setup


def read_version():
    ns = {}
    with open(osp.join('um_mae', 'version.py')) as f:
        exec(f.read(), ns)
    return ns['__version__']


def read_requirements(name):
    with open(osp.join('requirements', name)) as f:
        lines = (line.split('#')[0].strip() for line in f)
        return [line for line in lines if line and not line.startswith('-')]


setup(
    name='um_mae',
    version=read_version(),
    description='Uniform Masking MAE pre-training and transfer for pyramid '
    'vision transformers, as an OpenMMLab 2.0 plugin',
    long_description=open('README.md').read()
    if osp.exists('README.md') else '',
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('configs', 'tools', 'tests')),
    python_requires='>=3.8',
    # pre-training needs mmcv (with or without its compiled ops: mmcv.txt or
    # mmcv-lite.txt); detection / segmentation need the ops and dense.txt
    install_requires=read_requirements('pretrain.txt'),
    extras_require=dict(
        dense=read_requirements('dense.txt'),
        tests=read_requirements('tests.txt')),
    license='Apache License 2.0',
    zip_safe=False,
)
