"""The Keras model as export converts it: nothing in it tied to its input size, so the ONNX file takes
any height and width (multiples of 32) and a frame can keep its aspect (contract.ASPECT, issue 35).

Traced at the trained size, tf2onnx writes the graph it always wrote: Resize by scales, and convolution
pads that hold for every multiple of 32 (each stride-2 convolution sees an even size). One layer
alone depends on the size: the context module's global-pool branch, broadcast back to the bottleneck
by an UpSampling2D of the bottleneck's size (training/model.py's POOL_UP). `size_free` broadcasts it
to the shape of the tensor pooled instead (an Expand in ONNX); graph.free_spatial_dims then names the
graph's height and width instead of fixing them, and export checks the result at a second size.

`at_head_resolution` drops the last layer's bilinear x2 (the `logits` UpSampling2D of the lite and
residual U-Nets): the file's outputs come at the head's resolution, half the input, and the runtime
brings them to the frame with the smooth edges it draws anyway. Softmax, argmax and the temporal
average then run on a quarter of the pixels: 1.19x the viewer's FPS for `accurate` int8 on the demo,
with val and KITTI mIoU as drawn unchanged within 0.07 (docs/EXPORT.md, "Outputs at the head's resolution").
"""
from __future__ import annotations


def _broadcast_layer():
    """A Keras layer: [small (N, 1, 1, C), like (N, H, W, _)] -> small broadcast to (N, H, W, C)."""
    import keras
    import tensorflow as tf

    class BroadcastLike(keras.layers.Layer):
        def call(self, inputs):
            small, like = inputs
            return tf.broadcast_to(small, tf.concat([tf.shape(like)[:3], tf.shape(small)[3:]], 0))

        def compute_output_shape(self, shapes):
            small, like = shapes
            return (*like[:3], small[-1])

    return BroadcastLike


def _rewired(model, call):
    """`model` rebuilt with its own layers and weights, each layer applied through `call(layer, *args)`."""
    import keras
    size = tuple(model.inputs[0].shape[1:])
    return keras.models.clone_model(model, input_tensors=keras.Input(size, name=model.inputs[0].name),
                                    clone_function=lambda layer: layer, call_function=call)


def size_free(model):
    """`model` (sharing its layers and weights) with each POOL_UP broadcast by the pooled tensor's
    shape, not by a fixed size; `model` itself when it has none (the seed U-Net)."""
    import keras
    from realtime_seg.training.model import POOL_UP  # Keras loads with it: only once a model is converted
    if not any(layer.name.endswith(POOL_UP) for layer in model.layers):
        return model
    broadcast, pooled = _broadcast_layer(), {}

    def call(layer, *args, **kwargs):
        if isinstance(layer, keras.layers.GlobalAveragePooling2D):
            pooled[layer.name] = args[0]  # the context module's `{name}_pool`: what its branch broadcasts back to
        if layer.name.endswith(POOL_UP):
            like = pooled[layer.name[: -len(POOL_UP)] + "_pool"]
            return broadcast(name=layer.name)([args[0], like])
        return layer(*args, **kwargs)

    return _rewired(model, call)


HEAD_UPSAMPLING = "logits"  # the builders' last bilinear x2 (training/model.py)


def head_stride(model) -> int:
    """How much smaller than the input `at_head_resolution(model)`'s outputs are: 2 when the model ends
    in the builders' bilinear x2 (lite and residual U-Nets), else 1 (the seed U-Net)."""
    import keras
    layer = next((l for l in model.layers if l.name == HEAD_UPSAMPLING), None)
    up = isinstance(layer, keras.layers.UpSampling2D) and layer.interpolation == "bilinear"
    return 2 if up and tuple(layer.size) == (2, 2) else 1


def at_head_resolution(model):
    """`model` (sharing its layers and weights) without its last bilinear x2: logits at the head's
    resolution, the logit adjustment after it kept (it subtracts a constant per class, so it commutes
    with the upsampling). `model` itself when it has none."""
    if head_stride(model) == 1:
        return model

    def call(layer, *args, **kwargs):
        return args[0] if layer.name == HEAD_UPSAMPLING else layer(*args, **kwargs)

    return _rewired(model, call)
