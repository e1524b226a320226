"""User-caused conditions and how the CLIs report them.

A condition the user can cause and fix (a bad label line, a corrupt image, an unknown cfg key, a foreign checkpoint,
a diverged loss, a full disk, an unwritable folder) ends in one ``error:`` line naming the file, the line where
there is one, and what to do, with a non-zero exit code. Everything else is a bug and keeps its traceback.

``UserError`` is a ValueError, so callers that test for ValueError keep working; OSError (missing files,
permissions, a full disk) always comes from the user's environment and is reported the same way.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 128 + signal.SIGTERM


class UserError(ValueError):
    """Something the user gave or did is wrong; the message says where and what to do."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every cleanup an interrupt runs (a grid stopping its runs, a checkpoint
    writer finishing, temporary files removed) runs for it too."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


@contextlib.contextmanager
def interrupts_deferred():
    """Hold SIGINT and SIGTERM back until the block ends, then deliver them to the handlers in place before it.

    For code an exception must not cut in half: tensorboard's event writer, interrupted inside its queue's put(),
    leaves its thread waiting forever and close() joining it, so Ctrl-C hung train.py (1 in about 30 tries, under
    load). Outside the main thread, where handlers cannot be set, the block runs as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    for signum in previous:
        signal.signal(signum, lambda received, frame: caught.append(received))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(caught):
            os.kill(os.getpid(), signum)


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` as one line.

    An exception raised in a DataLoader worker is re-raised in the main process with the worker's traceback in its
    message; only its last line (the original message) is kept.
    """
    text = str(exc)
    if "Original Traceback" in text:
        last = [line for line in text.splitlines() if line.strip()][-1]
        prefix = f"{type(exc).__name__}: "
        text = last.split(prefix, 1)[1] if prefix in last else last
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        text = f"{where}{exc.strerror} ({_os_hint(exc)})"
    return " ".join(text.split("\n"))


def _os_hint(exc: OSError) -> str:
    hints = {2: "check the path", 13: "choose a folder you can write to, or fix its permissions",
             20: "a part of the path is a file, not a folder", 27: "the file size limit was reached; the previous "
             "file is intact", 28: "free disk space; the previous file is intact", 30: "choose a writable folder"}
    return hints.get(exc.errno, f"errno {exc.errno}")


def run_cli(main, args, prog: str) -> int:
    """Run ``main(args)`` and turn user-caused conditions into one ``PROG: error: ...`` line on stderr.

    Returns the exit code: main's own (an int) or 0, ``EXIT_ERROR`` for a user error, 130 on Ctrl-C, 143 on SIGTERM
    (which stops the process as Ctrl-C does, instead of killing it where it stands).
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        code = main(args)
    except (UserError, OSError) as exc:
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except Terminated:
        print(f"{prog}: terminated (SIGTERM)", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return code if isinstance(code, int) else 0
