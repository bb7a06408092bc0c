"""Fold an ONNX model's weight-only (block) quantisation into float32 weights.

OpenCV Zoo's SFace int8 file stores each weight as ``DequantizeLinear(int8, scales, zero points)``
(opset 21, with ``block_size``), then ``Reshape`` to the layer's shape. onnxruntime runs those
nodes on every call and cannot batch the file (its batch dimension is fixed at 1); folded, the
same arithmetic runs once, and the model takes any batch size.
"""
from __future__ import annotations

import numpy as np


def dequantize(q: np.ndarray, scale: np.ndarray, zero: np.ndarray | None, axis: int, block_size: int) -> np.ndarray:
    """ONNX ``DequantizeLinear``: ``(q - zero) * scale``, with per-tensor, per-axis or blocked scales."""
    q = q.astype(np.float32)
    zero = np.zeros_like(scale, np.float32) if zero is None else zero.astype(np.float32)
    if scale.ndim == 0 or scale.size == 1:
        return (q - zero.reshape(())) * scale.reshape(()).astype(np.float32)
    axis = axis % q.ndim
    if block_size:
        scale, zero = (np.repeat(v, block_size, axis=axis if v.ndim == q.ndim else 0) for v in (scale, zero))
        scale, zero = (np.take(v, np.arange(q.shape[axis]), axis=axis if v.ndim == q.ndim else 0) for v in (scale, zero))
    if scale.ndim != q.ndim:
        shape = [1] * q.ndim
        shape[axis] = q.shape[axis]
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return (q - zero) * scale.astype(np.float32)


def fold_weight_quantisation(model, batch_dim: str = "N"):
    """``model`` (an ``onnx.ModelProto``, changed in place and returned) with every ``DequantizeLinear``
    and ``Reshape`` whose inputs are all initializers replaced by a float32 initializer, graph inputs
    that are initializers or unread dropped, and the first input's batch dimension made ``batch_dim``."""
    from onnx import helper, numpy_helper

    init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    keep = []
    for node in model.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "DequantizeLinear" and all(i in init for i in node.input if i):
            args = [init[i] for i in node.input]
            init[node.output[0]] = dequantize(args[0], args[1], args[2] if len(args) > 2 else None,
                                              int(attrs.get("axis", 1)), int(attrs.get("block_size", 0)))
        elif node.op_type == "Reshape" and all(i in init for i in node.input):
            init[node.output[0]] = init[node.input[0]].reshape(init[node.input[1]])
        else:
            keep.append(node)
    read = {i for n in keep for i in n.input} | {o.name for o in model.graph.output}
    del model.graph.node[:]
    model.graph.node.extend(keep)
    del model.graph.initializer[:]
    model.graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in init.items() if k in read)
    inputs = [i for i in model.graph.input if i.name in read and i.name not in init]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = batch_dim
    return model
