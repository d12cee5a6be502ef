"""Explicit SIMD vectors for the compiled kernels (jit.py): register-blocked loops written as plain code.

numba's loop vectorizer turns one loop over contiguous elements into vector code, but it cannot keep a
block of accumulators in registers across a reduction: a depthwise, grouped or GEMM loop then loads and
stores its sums on every step and runs at a third of the core's peak. The functions here let a kernel
hold LLVM vector values (one 512-bit register: 16 float32 or 8 float64 lanes; LLVM splits them in two
on a machine with 256-bit registers only) in ordinary local variables, so a micro-kernel is written out:

    from convc.backends.numpy_ref import jit, simd

    @jit.kernel
    def two_rows(a, b, c, k_len):           # c[r, :16] = sum over k of a[k, r] * b[k, :16], r < 2
        acc0 = simd.zeros(c)                  # a vector of c's dtype, all lanes 0
        acc1 = simd.zeros(c)
        for k in range(k_len):
            row = simd.load(b, k * 16)        # b.flat[16k : 16k + 16]
            acc0 = simd.fma(simd.splat(a, 2 * k), row, acc0)       # splat: a.flat[2k] in every lane
            acc1 = simd.fma(simd.splat(a, 2 * k + 1), row, acc1)
        simd.store(c, 0, acc0)
        simd.store(c, 16, acc1)

Arrays must be C-contiguous (any rank); every index is a flat element offset from the array's first
element. `load`, `store`, `splat` and the partial forms check the whole access against the array's size
and raise IndexError past it; the `_unchecked` forms do not, for hot loops whose index range a test
proves. `fma` rounds once, as the contraction jit.OPTIONS allows (the NumPy stand-in rounds
float64 twice); `max_nan` propagates NaN as torch's
maximum and ReLU do; `hsum` adds the lanes in order. Where numba is missing, the same names are NumPy
functions on small arrays, so a kernel still runs as slow Python for a reader stepping through it.
"""
from __future__ import annotations

from typing import Any

import numpy as np

REGISTER_BYTES = 64  # one AVX-512 register; the vector width of every dtype


def lanes_of(dtype: Any) -> int:
    """Lanes of one vector of `dtype`: 16 for float32, 8 for float64."""
    return REGISTER_BYTES // np.dtype(dtype).itemsize


try:
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.core.errors import TypingError
    from numba.extending import intrinsic, models, register_model
except ImportError:  # no numba: the NumPy versions at the end of this file serve
    intrinsic = None

if intrinsic is not None:

    class VectorType(types.Type):  # type: ignore[misc]
        """A numba type: `lanes` values of `dtype` in one LLVM vector (a register)."""

        def __init__(self, dtype: Any, lanes: int) -> None:
            self.dtype = dtype
            self.lanes = lanes
            super().__init__(name=f"vector({dtype} x {lanes})")

    @register_model(VectorType)
    class _VectorModel(models.PrimitiveModel):  # type: ignore[misc]
        def __init__(self, dmm: Any, fe_type: VectorType) -> None:
            element = ir.FloatType() if fe_type.dtype == types.float32 else ir.DoubleType()
            super().__init__(dmm, fe_type, ir.VectorType(element, fe_type.lanes))

    def _vector_of(array: Any, what: str) -> VectorType:
        """The vector type for `array`'s elements, or a TypingError naming `what` needs."""
        if not isinstance(array, types.Array) or array.dtype not in (types.float32, types.float64):
            raise TypingError(f"simd.{what} needs a float32 or float64 array, got {array}")
        if array.layout != "C":
            raise TypingError(f"simd.{what} needs a C-contiguous array (flat offsets), got {array}")
        return VectorType(array.dtype, REGISTER_BYTES * 8 // array.dtype.bitwidth)

    def _same_vectors(what: str, *values: Any) -> VectorType:
        first = values[0]
        if not all(isinstance(v, VectorType) and v == first for v in values):
            raise TypingError(f"simd.{what} needs vectors of one type, got {values}")
        return first

    def _element_pointer(context: Any, builder: Any, array_type: Any, array: Any, index: Any,
                         count: Any, check: bool, what: str) -> Any:
        """Pointer to array.flat[index]; with `check`, IndexError unless index..index+count-1 lie in it."""
        arr = context.make_array(array_type)(context, builder, array)
        index = context.cast(builder, index[0], index[1], types.intp)
        if check:
            end = builder.add(index, count)
            outside = builder.or_(builder.icmp_signed("<", index, ir.Constant(index.type, 0)),
                                  builder.icmp_signed(">", end, arr.nitems))
            with cgutils.if_unlikely(builder, outside):
                context.call_conv.return_user_exc(
                    builder, IndexError, (f"simd.{what}: vector access past the array's end",))
        return builder.gep(arr.data, [index])

    def _lane_mask(builder: Any, lanes: int, count: Any) -> Any:
        """<lanes x i1>: lane j is on where j < count."""
        count = builder.trunc(count, ir.IntType(32)) if count.type.width > 32 else count
        splat = builder.insert_element(ir.Constant(ir.VectorType(ir.IntType(32), lanes), ir.Undefined),
                                       count, ir.Constant(ir.IntType(32), 0))
        splat = builder.shuffle_vector(splat, splat, ir.Constant(ir.VectorType(ir.IntType(32), lanes),
                                                                 [0] * lanes))
        steps = ir.Constant(ir.VectorType(ir.IntType(32), lanes), list(range(lanes)))
        return builder.icmp_signed("<", steps, splat)

    def _call_intrinsic(builder: Any, name: str, result: Any, arguments: list[Any]) -> Any:
        function_type = ir.FunctionType(result, [a.type for a in arguments])
        return builder.call(cgutils.get_or_insert_function(builder.module, function_type, name), arguments)

    def _suffix(vector: VectorType) -> str:
        return f"v{vector.lanes}{'f32' if vector.dtype == types.float32 else 'f64'}"

    def _make_load(check: bool, what: str) -> Any:
        @intrinsic
        def load(typingctx: Any, array: Any, index: Any) -> Any:
            vector = _vector_of(array, what)

            def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
                lanes = ir.Constant(ir.IntType(64), vector.lanes)
                pointer = _element_pointer(context, builder, array, args[0], (args[1], index), lanes,
                                           check, what)
                pointer = builder.bitcast(pointer, context.get_value_type(vector).as_pointer())
                return builder.load(pointer, align=array.dtype.bitwidth // 8)
            return vector(array, index), codegen
        return load

    def _make_store(check: bool, what: str) -> Any:
        @intrinsic
        def store(typingctx: Any, array: Any, index: Any, value: Any) -> Any:
            if _vector_of(array, what) != value:
                raise TypingError(f"simd.{what} needs a vector of {array.dtype}, got {value}")

            def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
                lanes = ir.Constant(ir.IntType(64), value.lanes)
                pointer = _element_pointer(context, builder, array, args[0], (args[1], index), lanes,
                                           check, what)
                pointer = builder.bitcast(pointer, context.get_value_type(value).as_pointer())
                builder.store(args[2], pointer, align=array.dtype.bitwidth // 8)
                return context.get_dummy_value()
            return types.none(array, index, value), codegen
        return store

    def _make_splat(check: bool, what: str) -> Any:
        @intrinsic
        def splat(typingctx: Any, array: Any, index: Any) -> Any:
            vector = _vector_of(array, what)

            def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
                pointer = _element_pointer(context, builder, array, args[0], (args[1], index),
                                           ir.Constant(ir.IntType(64), 1), check, what)
                return _broadcast(context, builder, vector, builder.load(pointer))
            return vector(array, index), codegen
        return splat

    def _broadcast(context: Any, builder: Any, vector: VectorType, scalar: Any) -> Any:
        llvm_type = context.get_value_type(vector)
        one = builder.insert_element(ir.Constant(llvm_type, ir.Undefined), scalar,
                                     ir.Constant(ir.IntType(32), 0))
        return builder.shuffle_vector(one, one, ir.Constant(ir.VectorType(ir.IntType(32), vector.lanes),
                                                            [0] * vector.lanes))

    load = _make_load(True, "load")
    load_unchecked = _make_load(False, "load_unchecked")
    store = _make_store(True, "store")
    store_unchecked = _make_store(False, "store_unchecked")
    splat = _make_splat(True, "splat")
    splat_unchecked = _make_splat(False, "splat_unchecked")

    def _pointer_suffix(vector_llvm_type: Any) -> str:
        """How LLVM names a pointer in an intrinsic: "p0" with opaque pointers (LLVM 17 on), else the
        pointee spelled out (numba 0.60-0.61's LLVM 14-15 run typed pointers)."""
        from llvmlite import binding
        if binding.llvm_version_info[0] >= 17:
            return "p0"
        return "p0" + str(vector_llvm_type).replace("<", "v").replace(" x ", "").replace(">", "") \
            .replace("float", "f32").replace("double", "f64")

    @intrinsic
    def load_partial(typingctx: Any, array: Any, index: Any, count: Any) -> Any:
        """The first `count` lanes from array.flat[index:], the others 0; nothing past them is read."""
        vector = _vector_of(array, "load_partial")

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            count_value = context.cast(builder, args[2], count, types.intp)
            _check_count(context, builder, count_value, vector.lanes, "load_partial")
            pointer = _element_pointer(context, builder, array, args[0], (args[1], index), count_value,
                                       True, "load_partial")
            llvm_type = context.get_value_type(vector)
            pointer = builder.bitcast(pointer, llvm_type.as_pointer())
            name = f"llvm.masked.load.{_suffix(vector)}.{_pointer_suffix(llvm_type)}"
            return _call_intrinsic(builder, name, llvm_type, [
                pointer, ir.Constant(ir.IntType(32), array.dtype.bitwidth // 8),
                _lane_mask(builder, vector.lanes, count_value), ir.Constant(llvm_type, [0.0] * vector.lanes)])
        return vector(array, index, count), codegen

    @intrinsic
    def store_partial(typingctx: Any, array: Any, index: Any, value: Any, count: Any) -> Any:
        """Lanes 0..count-1 of `value` into array.flat[index:]; nothing past them is written."""
        if _vector_of(array, "store_partial") != value:
            raise TypingError(f"simd.store_partial needs a vector of {array.dtype}, got {value}")

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            count_value = context.cast(builder, args[3], count, types.intp)
            _check_count(context, builder, count_value, value.lanes, "store_partial")
            pointer = _element_pointer(context, builder, array, args[0], (args[1], index), count_value,
                                       True, "store_partial")
            llvm_type = context.get_value_type(value)
            pointer = builder.bitcast(pointer, llvm_type.as_pointer())
            name = f"llvm.masked.store.{_suffix(value)}.{_pointer_suffix(llvm_type)}"
            _call_intrinsic(builder, name, ir.VoidType(), [
                args[2], pointer, ir.Constant(ir.IntType(32), array.dtype.bitwidth // 8),
                _lane_mask(builder, value.lanes, count_value)])
            return context.get_dummy_value()
        return types.none(array, index, value, count), codegen

    def _check_count(context: Any, builder: Any, count: Any, lanes: int, what: str) -> None:
        outside = builder.or_(builder.icmp_signed("<", count, ir.Constant(count.type, 0)),
                              builder.icmp_signed(">", count, ir.Constant(count.type, lanes)))
        with cgutils.if_unlikely(builder, outside):
            context.call_conv.return_user_exc(
                builder, IndexError, (f"simd.{what}: lane count outside 0..{lanes}",))

    @intrinsic
    def lanes(typingctx: Any, array: Any) -> Any:
        """Lanes of one vector of `array`'s dtype, a constant the compiler folds."""
        vector = _vector_of(array, "lanes")

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            return context.get_constant(types.intp, vector.lanes)
        return types.intp(array), codegen

    @intrinsic
    def zeros(typingctx: Any, array: Any) -> Any:
        """A vector of `array`'s dtype, every lane 0."""
        vector = _vector_of(array, "zeros")

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            return ir.Constant(context.get_value_type(vector), [0.0] * vector.lanes)
        return vector(array), codegen

    @intrinsic
    def splat_value(typingctx: Any, array: Any, value: Any) -> Any:
        """`value` (converted to `array`'s dtype) in every lane."""
        vector = _vector_of(array, "splat_value")
        if not isinstance(value, (types.Float, types.Integer)):
            raise TypingError(f"simd.splat_value needs a number, got {value}")

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            scalar = context.cast(builder, args[1], value, array.dtype)
            return _broadcast(context, builder, vector, scalar)
        return vector(array, value), codegen

    @intrinsic
    def fma(typingctx: Any, a: Any, b: Any, c: Any) -> Any:
        """a * b + c, lane by lane, rounded once."""
        vector = _same_vectors("fma", a, b, c)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            return _call_intrinsic(builder, f"llvm.fma.{_suffix(vector)}", context.get_value_type(vector),
                                   list(args))
        return vector(a, b, c), codegen

    def _make_arithmetic(what: str, operation: str) -> Any:
        @intrinsic
        def arithmetic(typingctx: Any, a: Any, b: Any) -> Any:
            vector = _same_vectors(what, a, b)

            def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
                return getattr(builder, operation)(args[0], args[1])
            return vector(a, b), codegen
        return arithmetic

    add = _make_arithmetic("add", "fadd")
    sub = _make_arithmetic("sub", "fsub")
    mul = _make_arithmetic("mul", "fmul")

    @intrinsic
    def max_nan(typingctx: Any, a: Any, b: Any) -> Any:
        """The larger of a and b lane by lane; NaN where either is NaN (torch.maximum, ReLU)."""
        vector = _same_vectors("max_nan", a, b)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            x, y = args
            take_x = builder.or_(builder.fcmp_ordered(">", x, y), builder.fcmp_unordered("uno", x, x))
            return builder.select(take_x, x, y)
        return vector(a, b), codegen

    @intrinsic
    def hsum(typingctx: Any, v: Any) -> Any:
        """The sum of v's lanes, added in lane order (a scalar of v's dtype)."""
        if not isinstance(v, VectorType):
            raise TypingError(f"simd.hsum needs a vector, got {v}")

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            total = builder.extract_element(args[0], ir.Constant(ir.IntType(32), 0))
            for lane in range(1, v.lanes):
                lane_value = builder.extract_element(args[0], ir.Constant(ir.IntType(32), lane))
                total = builder.fadd(total, lane_value)
            return total
        return v.dtype(v), codegen

else:  # numba missing: NumPy stand-ins with the same meaning, one small array per vector

    def _span(array: np.ndarray, index: int, count: int, what: str) -> np.ndarray:
        flat = array.reshape(-1)
        if index < 0 or index + count > flat.size:
            raise IndexError(f"simd.{what}: vector access past the array's end")
        return flat[index:index + count]

    def lanes(array: np.ndarray) -> int:  # type: ignore[misc]
        return lanes_of(array.dtype)

    def zeros(array: np.ndarray) -> np.ndarray:  # type: ignore[misc]
        return np.zeros(lanes_of(array.dtype), array.dtype)

    def load(array: np.ndarray, index: int) -> np.ndarray:  # type: ignore[misc]
        return _span(array, index, lanes_of(array.dtype), "load").copy()

    def store(array: np.ndarray, index: int, value: np.ndarray) -> None:  # type: ignore[misc]
        _span(array, index, lanes_of(array.dtype), "store")[:] = value

    def splat(array: np.ndarray, index: int) -> np.ndarray:  # type: ignore[misc]
        return np.full(lanes_of(array.dtype), _span(array, index, 1, "splat")[0], array.dtype)

    load_unchecked, store_unchecked, splat_unchecked = load, store, splat

    def load_partial(array: np.ndarray, index: int, count: int) -> np.ndarray:  # type: ignore[misc]
        if not 0 <= count <= lanes_of(array.dtype):
            raise IndexError("simd.load_partial: lane count outside the vector")
        out = np.zeros(lanes_of(array.dtype), array.dtype)
        out[:count] = _span(array, index, count, "load_partial")
        return out

    def store_partial(array: np.ndarray, index: int, value: np.ndarray, count: int) -> None:  # type: ignore[misc]
        if not 0 <= count <= lanes_of(array.dtype):
            raise IndexError("simd.store_partial: lane count outside the vector")
        _span(array, index, count, "store_partial")[:] = value[:count]

    def splat_value(array: np.ndarray, value: float) -> np.ndarray:  # type: ignore[misc]
        return np.full(lanes_of(array.dtype), value, array.dtype)

    def fma(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:  # type: ignore[misc]
        wide = a.astype(np.float64) * b + c
        return wide.astype(a.dtype) if a.dtype == np.float32 else a * b + c

    def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # type: ignore[misc]
        return a + b

    def sub(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # type: ignore[misc]
        return a - b

    def mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # type: ignore[misc]
        return a * b

    def max_nan(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # type: ignore[misc]
        return np.maximum(a, b)

    def hsum(v: np.ndarray) -> Any:  # type: ignore[misc]
        total = v[0]
        for x in v[1:]:
            total = total + x
        return total


__all__ = ["REGISTER_BYTES", "add", "fma", "hsum", "lanes", "lanes_of", "load", "load_partial",
           "load_unchecked", "max_nan", "mul", "splat", "splat_unchecked", "splat_value", "store",
           "store_partial", "store_unchecked", "sub", "zeros"]
