"""(being written) passes: choose_conv_algo."""
from __future__ import annotations

from convc.ir import Graph
from convc.pass_manager import PassContext, convc_pass


@convc_pass("choose_conv_algo", opt_level=2)
def choose_conv_algo(g: Graph, ctx: PassContext) -> bool:
    """(not yet implemented)"""
    return False
