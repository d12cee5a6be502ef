"""(being written) passes: eliminate_dropout,eliminate_identity,fold_constants,dce."""
from __future__ import annotations

from convc.ir import Graph
from convc.pass_manager import PassContext, convc_pass


@convc_pass("eliminate_dropout", opt_level=1)
def eliminate_dropout(g: Graph, ctx: PassContext) -> bool:
    """(not yet implemented)"""
    return False


@convc_pass("eliminate_identity", opt_level=1)
def eliminate_identity(g: Graph, ctx: PassContext) -> bool:
    """(not yet implemented)"""
    return False


@convc_pass("fold_constants", opt_level=1)
def fold_constants(g: Graph, ctx: PassContext) -> bool:
    """(not yet implemented)"""
    return False


@convc_pass("dce", opt_level=1)
def dce(g: Graph, ctx: PassContext) -> bool:
    """(not yet implemented)"""
    return False
