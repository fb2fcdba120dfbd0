"""Warnings that point at the user's line, not at fastgru's own files."""
import os
import sys
import warnings

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn(message, category=UserWarning):
    """warnings.warn with the stack level of the first caller outside fastgru (however deep
    inside fastgru the warning is raised: a backend chosen on first use, a kernel compiled
    on import)."""
    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
