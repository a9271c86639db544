"""Build the Cython fast paths in ext/ as modules of the sensor._ext package.

Each compiled module has a pure-Python twin in sensor/ with the same
interface; sensor._impl picks one or the other (SENSOR_NO_EXTENSIONS=1 forces
the twin).
"""

import glob
import os

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup


def extensions() -> list[Extension]:
    modules = []
    for source in sorted(glob.glob("ext/*.pyx")):
        name = os.path.splitext(os.path.basename(source))[0]
        modules.append(
            Extension(
                f"sensor._ext.{name}",
                [source],
                include_dirs=["ext", numpy.get_include()],
                extra_compile_args=["-O3"],
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            )
        )
    return cythonize(
        modules,
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
        include_path=["ext"],
    )


setup(ext_modules=extensions())
