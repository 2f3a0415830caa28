"""Test stand-in for ``torch_utils.persistence``: the pickle format of NVlabs' snapshots.

An instance of a persistent class pickles as ``_reconstruct_persistent_obj(meta)`` with
``meta = {type: 'class', version: 6, module_src, class_name, state}``: the text of the module
that defined the class travels with the object. Each instance records the arguments of its
constructor as ``_init_args`` and ``_init_kwargs`` (read through ``init_args``/``init_kwargs``).
Written for skipsearch's tests from the format's description; it only writes pickles.
"""

import copy
import sys
from pathlib import Path

import dnnlib

FORMAT_VERSION = 6
_persistent = set()


def _module_source(module_name):
    """The text of the file that defines module ``module_name``."""
    return Path(sys.modules[module_name].__file__).read_text()


def persistent_class(orig_class):
    """``orig_class`` whose instances record their init arguments and pickle with their source."""
    if orig_class in _persistent:
        return orig_class
    source, class_name = _module_source(orig_class.__module__), orig_class.__name__

    class Persistent(orig_class):
        _orig_module_src = source
        _orig_class_name = class_name

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._init_args = copy.deepcopy(args)
            self._init_kwargs = copy.deepcopy(kwargs)

        @property
        def init_args(self):
            return copy.deepcopy(self._init_args)

        @property
        def init_kwargs(self):
            return dnnlib.EasyDict(copy.deepcopy(self._init_kwargs))

        def __reduce__(self):
            parts = list(super().__reduce__())
            parts += [None] * (3 - len(parts))
            if parts[0] is not _reconstruct_persistent_obj:
                # Read through self: a persistent subclass of a persistent class pickles
                # under its own name and module text.
                meta = {"type": "class", "version": FORMAT_VERSION,
                        "module_src": self._orig_module_src,
                        "class_name": self._orig_class_name, "state": parts[2]}
                parts[:3] = [_reconstruct_persistent_obj, (meta,), None]
            return tuple(parts)

    Persistent.__name__ = Persistent.__qualname__ = class_name
    Persistent.__module__ = orig_class.__module__
    _persistent.add(Persistent)
    return Persistent


def _reconstruct_persistent_obj(meta):
    """The hook the pickles name; this stand-in writes snapshots and never reads them."""
    raise RuntimeError("the test stand-in of torch_utils.persistence does not load pickles")
