"""_lib - loads libringleader.so.0 and declares the C functions the package
calls (ctypes). Internal: the public names are in ringleader/__init__.py.

Which library: $RINGLEADER_LIBRARY when set (a path), else the one of this
package's own tree, which CMake wrote into _where.py when it staged or
installed the package: the build tree's lib/ (an absolute path), or the
install prefix's lib/ (a path relative to this directory, so the prefix can
move). Never a library found by the loader's search path, which could be
another installation's."""
import ctypes
import os

from . import _where

# The C enums, as lib/include/ringleader/allreduce.h and err.h list them.
F32, F64, I32, I64 = 0, 1, 2, 3
OP_SUM, OP_MIN, OP_MAX, OP_SUM_EXACT = 0, 1, 2, 3
OK, EINVAL, EREPLAN = 0, 1, 22


def library_path():
    """The path of the libringleader.so.0 this package loads."""
    env = os.environ.get("RINGLEADER_LIBRARY")
    if env:
        return env
    if os.path.isabs(_where.LIBRARY):
        return _where.LIBRARY
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), _where.LIBRARY))


def _load():
    path = library_path()
    if not os.path.exists(path):
        raise ImportError(
            "ringleader: no shared library at %s (set RINGLEADER_LIBRARY to the path of "
            "libringleader.so.0, or rebuild/reinstall with CMake)" % path)
    lib = ctypes.CDLL(path)
    c_int, c_size, c_u64, c_u32 = ctypes.c_int, ctypes.c_size_t, ctypes.c_uint64, ctypes.c_uint32
    vp, cp = ctypes.c_void_p, ctypes.c_char_p
    protos = {
        "rl_worker_join": (c_int, [cp, cp, cp, cp, ctypes.POINTER(vp)]),
        "rl_worker_rank": (c_int, [vp]),
        "rl_worker_size": (c_int, [vp]),
        "rl_worker_epoch": (c_u64, [vp]),
        "rl_worker_step": (c_u64, [vp]),
        "rl_worker_id": (cp, [vp]),
        "rl_worker_blocks": (c_size, [vp, ctypes.POINTER(ctypes.POINTER(c_u32))]),
        "rl_worker_blocks_total": (c_u32, [vp]),
        "rl_worker_data": (c_int, [vp, ctypes.POINTER(ctypes.POINTER(ctypes.c_float)),
                                   ctypes.POINTER(ctypes.POINTER(ctypes.c_float)),
                                   ctypes.POINTER(c_size), ctypes.POINTER(c_size)]),
        "rl_worker_allreduce": (c_int, [vp, vp, c_size, c_int, c_int]),
        "rl_worker_broadcast": (c_int, [vp, vp, c_size, c_int]),
        "rl_worker_leave": (c_int, [vp]),
        "rl_errdetail": (cp, []),
        "rl_errname": (cp, [c_int]),
        "rl_strerror": (cp, [c_int]),
    }
    for name, (res, args) in protos.items():
        f = getattr(lib, name, None)
        if f is None:
            raise ImportError("ringleader: %s does not export %s (an older library?)" % (path, name))
        f.restype = res
        f.argtypes = args
    return path, lib


PATH, LIB = _load()
