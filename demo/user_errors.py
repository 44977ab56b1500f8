"""A user's bad input shown as a message in the browser: ValueError / FileNotFoundError raised by the demo or
by videogpt_core become a `gr.Error`, without a server traceback."""
from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable
from pathlib import Path

import gradio as gr

# Run in the browser when the user starts something new (js= of a click): the error messages still on screen
# are about the last try, so they close. They do not time out, as they may be read at leisure.
DISMISS_ERRORS_JS = """() => {
    document.querySelectorAll('[data-testid="toast-body"].error [data-testid="toast-close"]')
        .forEach(button => button.click());
}"""


def user_error(message: str) -> gr.Error:
    """A message for the person at the browser; not a server fault, so no traceback in the log. It stays on
    screen until closed or the next try (a toast that vanished after 10 s left only red badges to puzzle
    over)."""
    return gr.Error(message, duration=None, print_exception=False)


def user_errors(fn: Callable) -> Callable:
    """Turn ValueError / FileNotFoundError (a user's bad input) into gr.Error; works for generators too."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def generator_wrapper(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except gr.Error:  # already worded for the user (gr.Error is a ValueError too)
                raise
            except (ValueError, FileNotFoundError) as error:
                raise user_error(str(error)) from error
        return generator_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except (ValueError, FileNotFoundError) as error:
            raise user_error(str(error)) from error
    return wrapper


@contextlib.contextmanager
def named_by_file_name(path: str | Path):
    """Errors name an upload by its file name, not by the server's temporary folder."""
    try:
        yield
    except (ValueError, FileNotFoundError) as error:
        message = str(error).replace(str(path), Path(path).name)
        raise type(error)(message) if type(error) in (ValueError, FileNotFoundError) else ValueError(message) \
            from error
