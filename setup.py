"""Install the ddml add-on for MMDetection3D.

The package lives in ``projects/DDML/ddml`` (mmdet3d's projects convention);
``pip install -e .`` makes ``import ddml`` work from any directory.
"""
from setuptools import find_packages, setup


def readme() -> str:
    with open('README.md', encoding='utf-8') as f:
        return f.read()


setup(
    name='ddml',
    version='0.1.0',
    description='Depth-discriminative metric learning for monocular 3D '
    'detectors in MMDetection3D',
    long_description=readme(),
    long_description_content_type='text/markdown',
    license='Apache License 2.0',
    package_dir={'': 'projects/DDML'},
    packages=find_packages('projects/DDML', exclude=('tests', )),
    python_requires='>=3.8',
    # The pinned stack (torch, mmcv built from source, ...) is installed by
    # `make install` from requirements/stack.txt; pip must not try to
    # resolve mmcv here because PyPI has no wheel for recent torch.
    install_requires=[],
    zip_safe=False,
)
