"""``facecore.training.onnx_fold``: DequantizeLinear against an element-by-element reference, and a
folded model against the quantised one under onnxruntime."""
import numpy as np
import pytest

from facecore.training.onnx_fold import dequantize, fold_weight_quantisation


def _reference(q, scale, zero, axis, block):
    """Element by element: the scale and zero point of an element's block (or of its index on ``axis``)."""
    out = np.zeros(q.shape, np.float32)
    for idx in np.ndindex(q.shape):
        if scale.size == 1:
            s, z = scale.reshape(()), zero.reshape(())
        else:
            j = list(idx)
            j[axis] = idx[axis] // block if block else idx[axis]
            s, z = (scale[tuple(j)], zero[tuple(j)]) if scale.ndim == q.ndim else (scale[j[axis]], zero[j[axis]])
        out[idx] = (float(q[idx]) - float(z)) * float(s)
    return out


@pytest.mark.parametrize("shape,axis,block,scale_shape", [
    ((6, 4), 0, 0, ()), ((6, 4), 0, 0, (6,)), ((5, 7, 3), 1, 0, (7,)),
    ((4, 10), 1, 4, (4, 3)), ((130,), 0, 64, (3,)), ((3, 18, 1, 1), 1, 9, (3, 2, 1, 1))])
def test_dequantize_matches_the_element_by_element_reference(shape, axis, block, scale_shape):
    rng = np.random.default_rng(0)
    q = rng.integers(-128, 128, shape).astype(np.int8)
    scale = rng.uniform(0.01, 0.1, scale_shape).astype(np.float32)
    zero = rng.integers(-3, 4, scale_shape).astype(np.int8)
    assert np.allclose(dequantize(q, scale, zero, axis, block), _reference(q, scale, zero, axis, block), atol=1e-6)


def test_folded_model_computes_what_the_quantised_one_does():
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    wq = rng.integers(-128, 128, (8, 128)).astype(np.int8)
    scales = rng.uniform(0.001, 0.01, (8, 2)).astype(np.float32)
    zeros = np.zeros((8, 2), np.int8)
    nodes = [helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], axis=1, block_size=64),
             helper.make_node("Reshape", ["w", "shape"], ["w2"]),
             helper.make_node("MatMul", ["x", "w2"], ["y"])]
    inits = [numpy_helper.from_array(wq, "wq"), numpy_helper.from_array(scales, "ws"),
             numpy_helper.from_array(zeros, "wz"), numpy_helper.from_array(np.array([128, 8]), "shape")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 128])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    x = rng.standard_normal((1, 128)).astype(np.float32)
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    folded = fold_weight_quantisation(onnx.ModelProto.FromString(model.SerializeToString()))
    assert [n.op_type for n in folded.graph.node] == ["MatMul"]
    assert folded.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    got = ort.InferenceSession(folded.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert np.allclose(got, want, atol=1e-5)
