"""FLOP count of a Keras model's inference and training step, counted from its TensorFlow graph.

`forward_flops(model, input_shape)` traces `model(x, training=False)` on a
static `input_shape` (batch included) as a concrete function and has
TensorFlow's own profiler count its graph (`tf.compat.v1.profiler.profile`
with `ProfileOptionBuilder.float_operation()`, the per-op "flops" statistics
TensorFlow registers), restricted to the ops of the weighted layers:

    Conv2D                  Conv2D (atrous too: 2 x output elements x kh*kw*Cin)
    DepthwiseConv2dNative   DepthwiseConv2D, the depthwise half of SeparableConv2D
    Conv2DBackpropInput     Conv2DTranspose (in a forward graph nothing else makes it)
    MatMul, BatchMatMul*    Dense

Each is 2 x its multiply-adds (a multiply and an add per MAC). A dilated Conv2D
is the layer's count only when it is one Conv2D op (`deeplab_tf.atrous.AtrousConv2D`):
Keras's own layer runs it on a space-to-batch copy padded to a multiple of the rate,
and its Conv2D op is counted at that padded size (more than the layer computes). Bias adds,
activations, batch norm, pooling, resizes and the loss are left out: they are
memory-bound and a few per cent of the arithmetic.

`train_flops = TRAIN_FACTOR x forward` (3): the usual convention (forward, the
gradient with respect to the inputs and with respect to the weights, each about
the forward's multiply-adds); the first layer's input gradient, which
TensorFlow does not compute, is counted anyway.

An op of these types whose shapes are not fully known would be counted as 0
by the profiler (it logs a warning and goes on), and it does not look inside
function calls or loops: `graph_flops` raises instead in both cases.
"""

COUNTED_OP_TYPES = ("Conv2D", "DepthwiseConv2dNative", "Conv2DBackpropInput", "MatMul",
                    "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3")
TRAIN_FACTOR = 3
# Ops whose bodies live in the function library, out of the profiler's sight.
FUNCTION_CALL_OP_TYPES = ("PartitionedCall", "StatefulPartitionedCall", "While", "StatelessWhile",
                          "If", "StatelessIf", "Case", "StatelessCase")


def concrete_forward(model, input_shape, dtype="float32"):
    """The concrete function of `model(x, training=False)` for x of static `input_shape`."""
    import tensorflow as tf

    @tf.function
    def forward(x):
        return model(x, training=False)

    return forward.get_concrete_function(tf.TensorSpec(tuple(input_shape), dtype))


def graph_flops(graph, op_types=COUNTED_OP_TYPES):
    """FLOPs of the ops of `op_types` in `graph`, as TensorFlow's profiler counts them.

    Only the total: the profiler's "op" view files an op under the type of the op
    whose name scope holds it (a SeparableConv2D's depthwise op under its Conv2D),
    so its per-type split is not one.
    """
    import tensorflow as tf

    calls = sorted({op.type for op in graph.get_operations() if op.type in FUNCTION_CALL_OP_TYPES})
    if calls:
        raise ValueError(f"cannot count FLOPs: the graph calls functions ({', '.join(calls)}), "
                         "whose ops the profiler does not see")
    unknown = [op for op in graph.get_operations() if op.type in op_types
               and not all(t.shape.is_fully_defined() for t in list(op.inputs) + list(op.outputs))]
    if unknown:
        op = unknown[0]
        raise ValueError(f"cannot count FLOPs: {len(unknown)} op(s) with shapes not fully known, "
                         f"e.g. {op.name} ({op.type}, inputs "
                         f"{[t.shape for t in op.inputs]}); give a static input shape")
    builder = tf.compat.v1.profiler.ProfileOptionBuilder
    options = (builder(builder.float_operation())
               .with_accounted_types([f"^{t}$" for t in op_types])
               .account_displayed_op_only(False)
               .with_empty_output().build())
    return int(tf.compat.v1.profiler.profile(graph, cmd="op", options=options).total_float_ops)


def forward_flops(model, input_shape, dtype="float32"):
    """FLOPs of one forward pass (inference step) of `model` on `input_shape` (batch included)."""
    return graph_flops(concrete_forward(model, input_shape, dtype).graph)


def train_flops(model, input_shape, dtype="float32"):
    """FLOPs of one training step: TRAIN_FACTOR x the forward (module docstring)."""
    return TRAIN_FACTOR * forward_flops(model, input_shape, dtype)
