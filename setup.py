"""The build of rewind's one C extension; everything else is configured in pyproject.toml.

``sidecar.capture._native`` is rewind-capture's hot path (sidecar/capture/native.py), with llhttp
vendored (sidecar/capture/native/llhttp/VERSION). Building it needs gcc and the Python headers.
"""

from setuptools import Extension, setup

SRC = "sidecar/capture/native"

setup(
    ext_modules=[
        Extension(
            "sidecar.capture._native",
            sources=[f"{SRC}/{name}" for name in (
                "module.c", "records.c", "track.c", "http1.c", "buf.c", "pack.c",
                "llhttp/llhttp.c", "llhttp/api.c", "llhttp/http.c")],
            depends=[f"{SRC}/hot.h", f"{SRC}/llhttp/llhttp.h"],
            include_dirs=[SRC],
            extra_compile_args=["-O2", "-std=gnu11"],
        ),
    ],
)
