"""ringleader.elastic - training that survives failures and rebalances,
the pattern of Horovod Elastic (docs/worker-api.md, "The elastic pattern").

    state = ringleader.elastic.State(w=weights, b=bias, step=0)

    @ringleader.elastic.run
    def train(state):
        X, y = w.data()                      # this member's blocks, now
        while state.step < steps:
            g = grad(state.w, state.b, X, y)
            w.allreduce(g)                   # may raise ringleader.Replanned
            update(state.w, state.b, g)
            state.step += 1
            state.commit()

    train(state)

State holds the arrays (NumPy arrays or CPU tensors, updated in place by the
program) and plain numbers (attributes, e.g. step). commit() copies them
aside; restore() puts the last commit back into the same arrays; sync()
gives every member rank 0's last commit (one broadcast). run(fn) syncs, calls
fn(state), and after a Replanned restores, syncs and calls fn(state) again,
until fn returns. Every member gets Replanned at the same step, so every
member takes part in the same sync; a process that joined a running job
gets the model there.
"""
import numbers

import numpy as np

import ringleader as _pkg
from ringleader import Replanned

__all__ = ["State", "run"]


def _view(name, x):
    """A NumPy array sharing x's memory (x: ndarray or CPU tensor)."""
    if isinstance(x, np.ndarray):
        v = x
    elif hasattr(x, "detach") and hasattr(x, "numpy"):
        if not x.is_cpu:
            raise TypeError("State: %s is a tensor on %s, not the CPU" % (name, x.device))
        v = x.detach().numpy()
    else:
        raise TypeError("State: %s is a %s, not a NumPy array, a torch.Tensor or a number"
                        % (name, type(x).__name__))
    if v.dtype.hasobject:
        raise TypeError("State: %s has dtype object" % name)
    if not v.flags.writeable:
        raise TypeError("State: %s is read-only (restore() writes it in place)" % name)
    return v


class State:
    """The training state every member must agree on: State(**arrays_or_tensors),
    where numbers (int, float, bool) become attributes to commit too (say
    step=0), and worker= names the worker (default: the one
    ringleader.join() returned last). The arrays are read and written in place, so keep using the
    same objects (a torch model's parameters: State(**dict(model.named_parameters())))."""

    def __init__(self, worker=None, **entries):
        object.__setattr__(self, "_worker", worker)
        arrays, scalars = {}, {}
        for k, v in entries.items():
            if isinstance(v, numbers.Number) and not isinstance(v, complex):
                scalars[k] = v
            else:
                arrays[k] = (v, _view(k, v))
        object.__setattr__(self, "_arrays", arrays)
        object.__setattr__(self, "_scalars", scalars)
        object.__setattr__(self, "_saved", None)
        self.commit()

    # arrays and numbers by name: state.step, state.w
    def __getattr__(self, name):
        d = object.__getattribute__(self, "_scalars")
        if name in d:
            return d[name]
        a = object.__getattribute__(self, "_arrays")
        if name in a:
            return a[name][0]
        raise AttributeError("State has no entry %r" % name)

    def __setattr__(self, name, value):
        if name in self._scalars:
            self._scalars[name] = value
        elif name in self._arrays:
            raise AttributeError("State: %s is an array: write into it (x[...] = v), do not "
                                 "rebind it" % name)
        else:
            object.__setattr__(self, name, value)

    def __getitem__(self, name):
        return self.__getattr__(name)

    def commit(self):
        """Keeps a copy of the arrays and numbers: what restore() and sync() give back."""
        saved = {k: v.copy() for k, (_, v) in self._arrays.items()}
        object.__setattr__(self, "_saved", (saved, dict(self._scalars)))

    def restore(self):
        """Puts the last commit back (into the same arrays, in place)."""
        saved, scalars = self._saved
        for k, (_, v) in self._arrays.items():
            np.copyto(v, saved[k])
        self._scalars.update(scalars)

    def sync(self, worker=None):
        """Gives every member rank 0's last commit, and restores it: one
        broadcast, a collective every member must call (it may raise
        Replanned). The worker is the one given to State or here."""
        w = worker or self._worker or _pkg._current
        if w is None:
            raise ValueError("State.sync: no worker: call ringleader.join() first")
        saved, scalars = self._saved
        keys = sorted(saved)
        skeys = sorted(scalars)
        nums = np.array([float(scalars[k]) for k in skeys], np.float64)
        parts = [saved[k].reshape(-1).view(np.uint8) for k in keys] + [nums.view(np.uint8)]
        buf = np.concatenate(parts) if parts else np.zeros(0, np.uint8)
        w.broadcast(buf, root=0)
        at = 0
        for k in keys:
            n = saved[k].nbytes
            saved[k].reshape(-1).view(np.uint8)[...] = buf[at:at + n]
            at += n
        got = buf[at:].view(np.float64)
        for k, v in zip(skeys, got):
            old = scalars[k]
            scalars[k] = type(old)(v) if isinstance(old, (bool, int)) else float(v)
        self.restore()


def run(fn):
    """Decorator: run(fn)(state, *args, **kw) syncs state, calls fn(state, ...)
    and returns its result; after a ringleader.Replanned it restores the last
    commit, syncs it from rank 0, and calls fn again (as Horovod Elastic's
    hvd.elastic.run). Other exceptions go through. The worker is the one
    ringleader.join() returned (or State(worker=w, ...))."""
    def wrapper(state, *args, **kwargs):
        while True:
            try:
                state.sync()
                return fn(state, *args, **kwargs)
            except Replanned:
                state.restore()
    wrapper.__name__ = getattr(fn, "__name__", "run")
    wrapper.__doc__ = fn.__doc__
    return wrapper
