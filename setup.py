"""Package discovery for convc's source layout (all other metadata lives in pyproject.toml).

Four folders install as one `convc` package: convc/ -> convc, passes/ -> convc.passes, backends/ ->
convc.backends and models/ -> convc.models (so no generic top-level `models` lands in site-packages).
Every subpackage under them (a folder with an __init__.py) is found here, so a new one such as convc/ops
cannot be left out of a wheel by a hand-kept list.
"""
from setuptools import find_packages, setup

PACKAGE_DIRS = {"convc": "convc", "convc.passes": "passes", "convc.backends": "backends", "convc.models": "models"}


def discover_packages() -> list[str]:
    """Every package under PACKAGE_DIRS, named as installed: e.g. 'convc.backends.triton'."""
    packages: list[str] = []
    for name, folder in PACKAGE_DIRS.items():
        packages.append(name)
        packages += [f"{name}.{sub}" for sub in find_packages(folder)]
    return sorted(set(packages))


setup(package_dir=PACKAGE_DIRS, packages=discover_packages())
