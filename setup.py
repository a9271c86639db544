"""Build the Cython fast paths in ext/ as modules of the sensor._ext package.

Each compiled module has a pure-Python twin in sensor/ with the same
interface; sensor._impl picks one or the other (SENSOR_NO_EXTENSIONS=1 forces
the twin).

It also generates the gRPC stubs of the API (proto/sensor/v1/*.proto) into
sensor/api/v1/ with grpcio-tools, before the modules are copied or built,
so that the generated code always matches the grpcio and protobuf installed
beside it. The generated files are not in git.
"""

import glob
import os
import re

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py


def generate_stubs() -> None:
    """proto/sensor/v1/*.proto -> sensor/api/v1/*_pb2.py, *_pb2.pyi, *_pb2_grpc.py."""
    from grpc_tools import protoc  # build requirement (pyproject.toml)

    import grpc_tools

    here = os.path.dirname(os.path.abspath(__file__))
    protos = sorted(glob.glob(os.path.join(here, "proto", "sensor", "v1", "*.proto")))
    out = os.path.join(here, "sensor", "api")
    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    args = ["protoc", f"-I{here}/proto", f"-I{include}"]
    args += [f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}"]
    # protoc writes proto/sensor/v1/x.proto to OUT/sensor/v1/; generate into
    # a scratch tree, then move into sensor/api/v1 with the imports rewritten.
    scratch = os.path.join(here, "build", "protoc")
    os.makedirs(scratch, exist_ok=True)
    args = [a.replace(f"={out}", f"={scratch}") for a in args]
    if protoc.main(args + protos) != 0:
        raise SystemExit("protoc failed on " + " ".join(protos))
    dest = os.path.join(out, "v1")
    for path in sorted(glob.glob(os.path.join(scratch, "sensor", "v1", "*_pb2*.py*"))):
        with open(path) as f:
            text = f.read()
        text = re.sub(r"^from sensor\.v1 import", "from sensor.api.v1 import", text, flags=re.M)
        target = os.path.join(dest, os.path.basename(path))
        old = open(target).read() if os.path.exists(target) else None
        if old != text:
            with open(target, "w") as f:
                f.write(text)


class BuildPy(build_py):
    def run(self) -> None:
        generate_stubs()
        super().run()


class BuildExt(build_ext):
    def run(self) -> None:
        generate_stubs()
        super().run()


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


setup(ext_modules=extensions(), cmdclass={"build_py": BuildPy, "build_ext": BuildExt})
