"""int16x8 TFLite models with the ops int16 cannot run well moved back to float32.

TF 2.15's 16x8 quantizer makes some ops int16 that then fail or lose the answer:
LayerNorm's SQUARED_DIFFERENCE has no int16 kernel, and the additive attention mask
(-1e9 at padding) at one int16 scale rounds the attention scores to 0. `float_islands`
rewrites the converted flatbuffer so those ops run in float32 between DEQUANTIZE and
QUANTIZE ops (`components.qa.tflite.export_tflite` calls it for 'int16x8').
"""

from __future__ import annotations

import numpy as np

# Ops the 16x8 quantizer makes int16 though TFLite has no int16 kernel for them (TF 2.15:
# "SquaredDifference only supports FLOAT32 and INT32 now, got 7" at invoke; LayerNorm has
# them; google-ai-edge/LiteRT#4383).
_OPS_WITHOUT_INT16_KERNELS = ("SQUARED_DIFFERENCE",)
# An int16 tensor calibrated to values beyond this magnitude holds an additive attention
# mask (-10000 or -1e9 at padding), not an activation: at one scale per tensor, int16
# then rounds the attention scores the mask is added to (|score| < 100) to 0 and every
# softmax becomes uniform over the unmasked tokens (F1 8 instead of 100 on the demo model).
_MAX_INT16_MAGNITUDE = 4096.0
# Ops left as they are even when they read such a tensor (they already output float32).
_KEEP_OPS = ("DEQUANTIZE",)


def float_islands(model_buffer: bytes) -> bytes:
    """The 16x8 model with the ops int16 cannot run well run in float32 instead.

    They are the int16 ops of `_OPS_WITHOUT_INT16_KERNELS`, the ops that output an int16
    tensor of magnitude over `_MAX_INT16_MAGNITUDE` (the attention mask and the scores it
    is added to) and, transitively, the ops that read such a tensor (the softmax after the
    mask). Each one reads float32 copies of its int16 inputs (a DEQUANTIZE, shared by the
    ops that read the same tensor) and writes float32 outputs; a QUANTIZE writes an output
    back into its original int16 tensor (with its calibrated scale) where an int16 op or
    the graph output reads it. Tensor indices, so the signature, are unchanged.
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_buffer))
    builtin = schema.BuiltinOperator
    int16 = schema.TensorType.INT16
    no_kernel = {getattr(builtin, name) for name in _OPS_WITHOUT_INT16_KERNELS}
    keep = {getattr(builtin, name) for name in _KEEP_OPS}
    if model.buffers[0].data is not None and len(model.buffers[0].data):
        raise ValueError("The converted model's buffer 0 is not the empty buffer")

    def code_of(op) -> int:
        code = model.operatorCodes[op.opcodeIndex]
        return max(code.builtinCode, code.deprecatedBuiltinCode)

    def opcode_index(builtin_code: int) -> int:
        for i, code in enumerate(model.operatorCodes):
            if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin_code:
                return i
        code = schema.OperatorCodeT()
        code.builtinCode = builtin_code
        code.deprecatedBuiltinCode = min(builtin_code, 127)
        code.version = 2  # as the 16x8 quantizer writes its own int16 <-> float32 ops
        model.operatorCodes.append(code)
        return len(model.operatorCodes) - 1

    def operator(builtin_code: int, inputs: list[int], outputs: list[int]):
        op = schema.OperatorT()
        op.opcodeIndex = opcode_index(builtin_code)
        op.inputs, op.outputs = inputs, outputs
        return op

    def rewrite(graph) -> bool:
        """Rewrites one subgraph; whether it changed."""
        tensors = graph.tensors
        ops = list(graph.operators)

        def is_int16(i: int) -> bool:
            return i >= 0 and tensors[i].type == int16

        def too_large(i: int) -> bool:
            q = tensors[i].quantization
            return (is_int16(i) and q is not None and q.scale is not None and len(q.scale) > 0
                    and float(np.max(np.abs(q.scale))) * 32767 > _MAX_INT16_MAGNITUDE)

        def floatable(op) -> bool:
            """Whether the op runs in float given float32 copies of its int16 inputs: not
            `_KEEP_OPS`, and no other quantized input (int8 weights, int64 biases)."""
            return code_of(op) not in keep and all(
                i < 0 or is_int16(i) or tensors[i].quantization is None
                or tensors[i].quantization.scale is None
                or len(tensors[i].quantization.scale) == 0
                for i in op.inputs)

        readers: dict[int, list[int]] = {}
        for n, op in enumerate(ops):
            for i in op.inputs:
                readers.setdefault(i, []).append(n)
        floated = {n for n, op in enumerate(ops) if floatable(op) and any(
            is_int16(i) and (code_of(op) in no_kernel or too_large(i)) for i in op.outputs)}
        todo = list(floated)
        while todo:
            for i in ops[todo.pop()].outputs:
                for n in readers.get(i, []) if too_large(i) else []:
                    if n not in floated and floatable(ops[n]):
                        floated.add(n)
                        todo.append(n)
        if not floated:
            return False
        graph_outputs = set(graph.outputs)
        float_of: dict[int, int] = {}

        def float_copy(i: int, suffix: str) -> int:
            tensor = schema.TensorT()
            tensor.shape = tensors[i].shape
            tensor.shapeSignature = tensors[i].shapeSignature
            tensor.type = schema.TensorType.FLOAT32
            tensor.buffer = 0  # the empty buffer: an activation
            tensor.name = (tensors[i].name or b"") + suffix.encode()
            tensors.append(tensor)
            return len(tensors) - 1

        rewritten = []
        for n, op in enumerate(ops):
            if n not in floated:
                rewritten.append(op)
                continue
            if code_of(op) == builtin.QUANTIZE:  # float32 -> int16: its input is the copy
                (i,), (o,) = op.inputs, op.outputs
                float_of[o] = i
                if o in graph_outputs or any(r not in floated for r in readers.get(o, [])):
                    rewritten.append(op)
                continue
            inputs = []
            for i in op.inputs:
                if is_int16(i):
                    if i not in float_of:
                        float_of[i] = float_copy(i, "/float")
                        rewritten.append(operator(builtin.DEQUANTIZE, [i], [float_of[i]]))
                    i = float_of[i]
                inputs.append(i)
            outputs, requantize = [], []
            for i in op.outputs:
                if is_int16(i):
                    float_of[i] = float_copy(i, "/float")
                    if i in graph_outputs or any(r not in floated for r in readers.get(i, [])):
                        requantize.append(operator(builtin.QUANTIZE, [float_of[i]], [i]))
                    i = float_of[i]
                outputs.append(i)
            op.inputs, op.outputs = inputs, outputs
            rewritten.append(op)
            rewritten.extend(requantize)
        graph.operators = rewritten
        return True

    changed = [rewrite(graph) for graph in model.subgraphs]
    if not any(changed):
        return model_buffer
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
