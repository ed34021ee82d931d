"""SQLite's allocation statistics off, process-wide: with them on (the default), every
allocation SQLite makes takes one global mutex, so threads on separate connections run
one at a time. Debian's libsqlite3 is built without lookaside memory, so an FTS5 search
allocates for every row it scores: two search threads did no more than one (python3-doc,
2 cores: ~850 searches/s either way; ~1,650/s with the statistics off).

The setting only applies while SQLite is not initialized, and Python's ``sqlite3`` module
initializes it on import: it is shut down and initialized again, but only when no SQLite
memory is in use (no connection or statement open anywhere in the process). A Python
whose SQLite is linked in without exported symbols keeps the default.
"""

from __future__ import annotations

import _sqlite3  # initializes SQLite: its library is loaded
import ctypes
import functools

_OK = 0
_CONFIG_MEMSTATUS = 9


@functools.cache
def unshared_allocator() -> bool:
    """Turn SQLite's allocation statistics off if it is safe now (once per process, called
    on import, before threads use SQLite); whether they are off."""
    try:
        lib = ctypes.CDLL(_sqlite3.__file__)
        config, malloc, free = lib.sqlite3_config, lib.sqlite3_malloc, lib.sqlite3_free
        used, shutdown, initialize = (
            lib.sqlite3_memory_used,
            lib.sqlite3_shutdown,
            lib.sqlite3_initialize,
        )
    except (AttributeError, OSError):  # symbols not exported (SQLite linked in statically)
        return False
    malloc.restype, free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
    used.restype = ctypes.c_int64
    if config(ctypes.c_int(_CONFIG_MEMSTATUS), ctypes.c_int(0)) == _OK:
        return True  # not initialized yet
    before = used()
    probe = malloc(64)
    counting = used() > before  # the statistics are on
    free(probe)
    if not counting or before != 0:  # off already, or something holds SQLite memory
        return not counting
    shutdown()
    config(ctypes.c_int(_CONFIG_MEMSTATUS), ctypes.c_int(0))
    return bool(initialize() == _OK)
