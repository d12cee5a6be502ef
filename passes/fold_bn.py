"""(being written) passes: fold_bn."""
from __future__ import annotations

from convc.ir import Graph
from convc.pass_manager import PassContext, convc_pass


@convc_pass("fold_bn", opt_level=1)
def fold_bn(g: Graph, ctx: PassContext) -> bool:
    """(not yet implemented)"""
    return False
