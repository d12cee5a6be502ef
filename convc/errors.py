"""User-facing errors. A ConvcError names the node, layer or option at fault and says what is right.

A traceback is for convc's own bugs; every mistake a user can make surfaces as one of these.
"""
from __future__ import annotations


class ConvcError(Exception):
    """Base class of every error a user's input can cause."""


class DefinitionError(ConvcError):
    """A layer written in the DSL is ill-formed (shapes, attributes, names)."""


class GraphError(ConvcError):
    """An IR graph failed verification."""


class ParameterError(ConvcError):
    """Parameters do not match the graph (missing, unexpected or wrongly shaped keys)."""


class BackendError(ConvcError):
    """A backend cannot run a node (unknown op, algorithm that does not apply, bad input)."""


class PassError(ConvcError):
    """A pass pipeline is ill-formed or a pass broke the graph."""


class PluginError(ConvcError):
    """A plugin (backend or pass) failed to load or misbehaved."""


class OptionError(ConvcError):
    """A bad option value (CLI flag or keyword argument)."""


class SizeLimitError(ConvcError):
    """A tensor or a network would need more memory than the limit (convc/limits.py)."""


class FileFormatError(ConvcError):
    """A file convc reads is corrupt, truncated, foreign, torn, or written by a newer convc."""


class PluginWarning(UserWarning):
    """A plugin package is broken and left out; everything else still works."""
