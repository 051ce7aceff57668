"""ringleader - the worker API in Python: a process joins a Ringleader job
as a node and sums its arrays with the other members' (docs/worker-api.md).

    import ringleader
    w = ringleader.join()              # from the RINGLEADER_* environment
    X, y = w.data()                    # the rows of this member's blocks
    g = grad(model, X, y)              # float32/float64/int32/int64, contiguous
    w.allreduce(g)                     # in place, summed over the members
    w.leave()

A collective raises ringleader.Replanned when membership or blocks changed
(every member at the same step: read the new blocks, redo the step, or let
ringleader.elastic.run do it), and ringleader.Error for the library's
errors, with its message. Bad input raises TypeError before anything is sent,
so the other members never wait on it.

The package is a thin layer over libringleader.so.0 (ctypes): the arrays are
passed by address, never copied. One thread at a time may use a worker.
"""
import sys

import numpy as _np

from . import _lib

__all__ = ["join", "Worker", "Replanned", "Error", "elastic"]

_L = _lib.LIB
_c_allreduce = _L.rl_worker_allreduce
_c_broadcast = _L.rl_worker_broadcast


class Error(Exception):
    """A library error: code (int), name ("RL_ETIMEDOUT") and the message
    (rl_errdetail) as its text."""

    def __init__(self, code, detail):
        self.code = code
        self.name = _L.rl_errname(code).decode()
        self.detail = detail
        Exception.__init__(self, "%s: %s" % (self.name, detail or _L.rl_strerror(code).decode()))


class Replanned(Exception):
    """Membership or blocks changed (a failure, a rejoin, a rebalance): every
    member gets it at the same step. The collective did not complete; the
    buffer's contents are unspecified. Read the new blocks (w.data()),
    restore the last committed state and redo the step."""

    def __init__(self, detail):
        self.detail = detail
        Exception.__init__(self, detail)


def _raise(rv):
    detail = _L.rl_errdetail().decode(errors="replace")
    if rv == _lib.EREPLAN:
        raise Replanned(detail)
    raise Error(rv, detail)


_NP_DTYPES = {
    _np.dtype(_np.float32): _lib.F32,
    _np.dtype(_np.float64): _lib.F64,
    _np.dtype(_np.int32): _lib.I32,
    _np.dtype(_np.int64): _lib.I64,
}
_OPS = {"sum": _lib.OP_SUM, "min": _lib.OP_MIN, "max": _lib.OP_MAX,
        "sum_exact": _lib.OP_SUM_EXACT}
_TORCH_DTYPES = None  # filled at the first tensor (torch is not imported here)
_DTYPE_NAMES = "float32, float64, int32, int64"


def _torch_dtypes():
    global _TORCH_DTYPES
    torch = sys.modules["torch"]
    _TORCH_DTYPES = {torch.float32: _lib.F32, torch.float64: _lib.F64,
                     torch.int32: _lib.I32, torch.int64: _lib.I64}
    return _TORCH_DTYPES


def _tensor(x, what, any_dtype):
    """(address, element count, rl dtype, bytes) of a CPU torch.Tensor, or TypeError."""
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(x, torch.Tensor):
        raise TypeError("%s: a %s.%s is neither a NumPy array nor a torch.Tensor"
                        % (what, type(x).__module__, type(x).__name__))
    dts = _TORCH_DTYPES or _torch_dtypes()
    dt = dts.get(x.dtype)
    if dt is None and not any_dtype:
        raise TypeError("%s: tensor dtype %s is not supported (%s)"
                        % (what, str(x.dtype).replace("torch.", ""), _DTYPE_NAMES))
    if not x.is_cpu:
        raise TypeError("%s: the tensor is on %s, not the CPU" % (what, x.device))
    if x.layout is not torch.strided:
        raise TypeError("%s: a %s tensor (only dense tensors)" % (what, x.layout))
    if not x.is_contiguous():
        raise TypeError("%s: the tensor is not contiguous (shape %s, strides %s): pass "
                        "x.contiguous() and use the result" % (what, tuple(x.shape), x.stride()))
    if x.is_conj() or x.is_neg():
        raise TypeError("%s: the tensor has a lazy conjugate or negation bit" % what)
    n = x.numel()
    return x.data_ptr(), n, dt, n * x.element_size()


def _array(x, what, any_dtype=False):
    """(address, element count, rl dtype, bytes) of an array the library may
    write in place, or TypeError naming what is wrong."""
    if type(x) is not _np.ndarray:
        if not isinstance(x, _np.ndarray):
            return _tensor(x, what, any_dtype)
    dt = _NP_DTYPES.get(x.dtype)
    if dt is None and (not any_dtype or x.dtype.hasobject):
        raise TypeError("%s: dtype %s is not supported (%s, native byte order)"
                        % (what, x.dtype.str if x.dtype.byteorder not in "=|" else x.dtype,
                           _DTYPE_NAMES))
    fl = x.flags
    if not fl.c_contiguous:
        raise TypeError("%s: the array is not C-contiguous (shape %s, strides %s): pass "
                        "np.ascontiguousarray(x) and use the result" % (what, x.shape, x.strides))
    if not fl.writeable:
        raise TypeError("%s: the array is read-only (the result is written in place)" % what)
    return x.ctypes.data, x.size, dt, x.nbytes


class Worker:
    """A member of a job (ringleader.join()). Attributes: rank, size, epoch,
    step, blocks, blocks_total, id."""

    __slots__ = ("_h",)

    def __init__(self, handle):
        self._h = handle

    # -- what this member is -------------------------------------------------
    def _handle(self):
        if not self._h:
            raise Error(_lib.EINVAL, "the worker has left the job")
        return self._h

    @property
    def rank(self):
        """This member's rank, 0 .. size-1, in the current epoch."""
        return _L.rl_worker_rank(self._handle())

    @property
    def size(self):
        """How many members the job has in the current epoch."""
        return _L.rl_worker_size(self._handle())

    @property
    def epoch(self):
        """The current epoch: it grows at every change of membership or blocks."""
        return _L.rl_worker_epoch(self._handle())

    @property
    def step(self):
        """Collectives completed so far (the job's step as this member counts
        it). Greater than 0 right after join(): this process joined a running
        job and must get the model from the others (elastic.State.sync)."""
        return _L.rl_worker_step(self._handle())

    @property
    def id(self):
        """The node id this process joined as."""
        return _L.rl_worker_id(self._handle()).decode()

    @property
    def blocks(self):
        """The ids of the data blocks this member holds now (a list of ints)."""
        ids = _lib.ctypes.POINTER(_lib.ctypes.c_uint32)()
        n = _L.rl_worker_blocks(self._handle(), _lib.ctypes.byref(ids))
        return [ids[i] for i in range(n)]

    @property
    def blocks_total(self):
        """How many blocks the job's data has."""
        return _L.rl_worker_blocks_total(self._handle())

    def data(self):
        """(X, y): the rows of this member's current blocks of the spec's
        data section, as the built-in trainer makes them (synthetic, or the
        CSV standardised with the whole table's statistics). X is a
        rows x features float32 array, y the rows' labels (float32). They are
        copies: they stay valid after a Replanned (but are then the old
        blocks' rows: call data() again)."""
        c = _lib.ctypes
        X = c.POINTER(c.c_float)()
        y = c.POINTER(c.c_float)()
        rows, feats = c.c_size_t(), c.c_size_t()
        rv = _L.rl_worker_data(self._handle(), c.byref(X), c.byref(y), c.byref(rows),
                               c.byref(feats))
        if rv:
            _raise(rv)
        r, f = rows.value, feats.value
        if r == 0:
            return _np.zeros((0, f), _np.float32), _np.zeros(0, _np.float32)
        return (_np.ctypeslib.as_array(X, shape=(r, f)).copy(),
                _np.ctypeslib.as_array(y, shape=(r,)).copy())

    # -- collectives ---------------------------------------------------------
    def allreduce(self, x, op="sum"):
        """Reduces x with the other members' copies, in place, and returns x.
        x: a C-contiguous, writable NumPy array or CPU torch.Tensor of
        float32, float64, int32 or int64 (not copied). op: "sum", "min",
        "max", or "sum_exact" (float32/float64: a sum in associative form,
        rounded once, the same bits on any member count; docs/exactness.md
        gives its precision). Every member
        must call with the same element count, dtype and op: otherwise
        ringleader.Error on every member, naming both. Raises Replanned (see
        the class), Error, or TypeError/ValueError for bad arguments before
        anything is sent."""
        a, n, dt, _ = _array(x, "allreduce")
        o = _OPS.get(op) if type(op) is str else None
        if o is None:
            raise ValueError("allreduce: op %r is not one of %s" % (op, ", ".join(_OPS)))
        if o == _lib.OP_SUM_EXACT and dt > _lib.F64:
            raise TypeError("allreduce: op sum_exact takes float32 or float64, not an integer dtype")
        rv = _c_allreduce(self._h, a, n, dt, o)
        if rv:
            _raise(rv)
        return x

    def broadcast(self, x, root=0):
        """Copies root's x to every member's x, in place, and returns x. x as
        for allreduce, of any plain dtype (bytes are copied); every member
        must pass the same byte size. Raises as allreduce."""
        a, _, _, nb = _array(x, "broadcast", any_dtype=True)
        if type(root) is not int:
            raise TypeError("broadcast: root must be an int, not %s" % type(root).__name__)
        rv = _c_broadcast(self._h, a, nb, root)
        if rv:
            _raise(rv)
        return x

    def barrier(self):
        """Returns when every member has entered it: a collective of no data
        (it counts as a step and may raise Replanned)."""
        rv = _c_allreduce(self._h, None, 0, _lib.F32, _lib.OP_SUM)
        if rv:
            _raise(rv)

    # -- the end ---------------------------------------------------------------
    def leave(self):
        """Leaves the job (the others go on under a new epoch, or the job
        ends once every node has left). Idempotent."""
        global _current
        h, self._h = self._h, None
        if _current is self:
            _current = None
        if h:
            rv = _L.rl_worker_leave(h)
            if rv:
                _raise(rv)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.leave()
        return False

    def __repr__(self):
        if not self._h:
            return "<ringleader.Worker (left)>"
        return "<ringleader.Worker %s rank %d of %d, epoch %d>" % (
            self.id, self.rank, self.size, self.epoch)


def _arg(s, name):
    if s is None:
        return None
    if not isinstance(s, str):
        raise TypeError("join: %s must be a str, not %s" % (name, type(s).__name__))
    return s.encode()


def join(coordinator=None, node_id=None, listen=None, token_file=None):
    """Joins the job as a node and waits for its first plan and ring.
    Arguments left out come from the environment a coordinator sets for the
    programs it starts (RINGLEADER_COORDINATOR, RINGLEADER_NODE_ID,
    RINGLEADER_LISTEN, RINGLEADER_TOKEN_FILE). Returns a Worker; raises
    Error (e.g. RL_ECONFIG when the environment is missing, RL_EAUTH for a
    wrong token)."""
    c = _lib.ctypes
    h = c.c_void_p()
    rv = _L.rl_worker_join(_arg(coordinator, "coordinator"), _arg(node_id, "node_id"),
                           _arg(listen, "listen"), _arg(token_file, "token_file"), c.byref(h))
    if rv:
        _raise(rv)
    global _current
    _current = Worker(h.value)
    return _current


_current = None  # the worker join() returned last: elastic.State's default


from . import elastic  # noqa: E402  (needs the names above)
