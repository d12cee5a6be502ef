"""(being written) passes: fuse_epilogue."""
from __future__ import annotations

from convc.ir import Graph
from convc.pass_manager import PassContext, convc_pass


@convc_pass("fuse_epilogue", opt_level=2)
def fuse_epilogue(g: Graph, ctx: PassContext) -> bool:
    """(not yet implemented)"""
    return False
