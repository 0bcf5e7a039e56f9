"""Workers are started with ``spawn``, which re-imports the calling script: a script
that starts a run at its top level needs an ``if __name__ == "__main__":`` guard."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from quantbench.errors import QuantbenchError


def check_main_guard(what: str) -> None:
    """Refuse to start worker processes from a script's top level without a
    ``if __name__ == "__main__":`` guard.

    Workers are started with ``spawn``: each imports the script again, so an unguarded
    call would run again in every worker (which Python then stops, and every cell would
    read "worker exited with code 1"). Found here, before anything runs, from the
    calling line's place in the script's source.
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or not path or not str(path).endswith(".py"):
        return  # an interactive session, python -c, a notebook: nothing is re-imported
    frame, top = sys._getframe(1), None
    while frame is not None:  # the script's own top-level line that led here, if any
        if frame.f_globals is main.__dict__ and frame.f_code.co_name == "<module>":
            top = frame
        frame = frame.f_back
    if top is None:
        return  # not reached from the script's top level (a thread, a callback)
    frame = top
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return
    if not _inside_main_guard(tree, frame.f_lineno):
        raise QuantbenchError(
            f"{what}() is called at the top level of {Path(path).name} (line {frame.f_lineno}) "
            'without an `if __name__ == "__main__":` guard; each worker process imports the '
            "script again, so put the call under that guard"
        )


def _inside_main_guard(tree: ast.Module, line: int) -> bool:
    for node in tree.body:
        if isinstance(node, ast.If) and _is_main_test(node.test):
            end = getattr(node, "end_lineno", None) or line
            if node.lineno <= line <= end:
                return True
    return False


def _is_main_test(test: ast.expr) -> bool:
    """``__name__ == "__main__"`` (either way round)."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
        return False
    if not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s.id for s in sides if isinstance(s, ast.Name)]
    consts = [s.value for s in sides if isinstance(s, ast.Constant)]
    return names == ["__name__"] and consts == ["__main__"]
