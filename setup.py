# setup.py exists only to hand cffi's out-of-line build to setuptools;
# everything else lives in pyproject.toml.
from setuptools import setup

setup(cffi_modules=["csrc/build_native.py:ffibuilder"])
