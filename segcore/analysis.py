"""Small computations the source documents demonstrate, for the reproduction notebooks.

The documents are listed in SOURCES.md: seed 001 is the Korean semantic-segmentation
lecture notes, seed 004 the Korean blog post of a from-scratch FCN project.

* `transposed_conv_overlap`: how many input pixels a transposed convolution
  writes into each output pixel (seed 001's checkerboard: kernel 3, stride 2
  overlaps up to 4 times in 2-D; none when kernel % stride == 0).
* `stride_frequency_energy`: the share of an image's spectral energy at the
  frequencies of a stride (m / stride cycles per pixel, m = 1..stride-1), the
  number that measures a checkerboard pattern (Odena et al., Distill 2016).
* `foreign_label_pixels`: pixels of a resized label map whose class is none of
  the classes of the source pixels they were interpolated from (seed 004: a mask
  resized bilinearly gets "colours of no class"; nearest neighbour never does).
* `kernel_gradient_norms`: L2 norm of the loss gradient of each layer's kernel
  for one batch (seed 004: which zero-initialised score layers can learn).
* `zero_layers`: set the weights of named layers to zero (seed 004's failure case).
* `layer_table`: (name, class, kernel, strides, output shape, parameters) rows of a model.
"""

import numpy as np

from segcore.errors import ConfigError


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def transposed_conv_overlap(input_size, kernel_size, stride, ndim=2):
    """int array: number of input pixels whose kernel footprint covers each output pixel.

    Unpadded ('valid') transposed convolution of an all-ones input of `input_size`
    pixels per side, with Keras' output size input_size * stride + max(kernel_size
    - stride, 0) (`keras.layers.Conv2DTranspose(padding="valid")`; pixels no input
    reaches count 0). In 1-D, output pixel j receives input i when 0 <= j - i *
    stride < kernel_size; in `ndim` dimensions the count is the product of the
    1-D counts.
    """
    input_size = _positive_int("input_size", input_size)
    kernel_size = _positive_int("kernel_size", kernel_size)
    stride = _positive_int("stride", stride)
    if ndim not in (1, 2):
        raise ConfigError(f"ndim must be 1 or 2, got {ndim!r}")
    length = input_size * stride + max(kernel_size - stride, 0)
    counts = np.zeros(length, np.int64)
    for i in range(input_size):
        counts[i * stride: i * stride + kernel_size] += 1
    return counts if ndim == 1 else np.outer(counts, counts)


def stride_frequency_energy(image, stride):
    """Fraction (0..1) of the non-DC spectral energy of `image` at the stride's frequencies.

    `image`: [H, W] or [H, W, C] (channels are summed). The mean of each channel
    is removed; the energy is |FFT|^2. The stride's frequencies are the bins
    whose row or column frequency is a non-zero multiple of 1/stride cycles per
    pixel (bins k with k * stride % N == 0, k != 0). A pattern repeating every
    `stride` pixels puts all its energy there (1.0); white noise spreads evenly,
    so it gets the share of such bins: (stride - 1) rows and columns of an
    H x W spectrum, about (stride - 1) (H + W) / (H W).
    """
    stride = _positive_int("stride", stride)
    values = np.asarray(image, np.float64)
    if values.ndim == 2:
        values = values[..., None]
    if values.ndim != 3:
        raise ConfigError(f"image must be [H, W] or [H, W, C], got shape {np.shape(image)}")
    height, width = values.shape[:2]
    if height % stride or width % stride:
        raise ConfigError(f"image size {height}x{width} must be divisible by stride {stride}")
    values = values - values.mean(axis=(0, 1), keepdims=True)
    power = (np.abs(np.fft.fft2(values, axes=(0, 1))) ** 2).sum(axis=-1)
    power[0, 0] = 0.0
    total = power.sum()
    if total == 0:
        return 0.0
    rows = (np.arange(height) * stride) % height == 0
    cols = (np.arange(width) * stride) % width == 0
    rows[0] = cols[0] = False
    at_stride = rows[:, None] | cols[None, :]
    return float(power[at_stride].sum() / total)


def _source_neighbours(out_size, in_size):
    """Lower and upper source index of each output index (half-pixel centres)."""
    position = (np.arange(out_size) + 0.5) * in_size / out_size - 0.5
    low = np.clip(np.floor(position).astype(np.int64), 0, in_size - 1)
    return low, np.clip(low + 1, 0, in_size - 1)


def foreign_label_pixels(source, resized):
    """Number of pixels of `resized` whose value is none of its 2x2 source neighbours.

    `source` [h, w] and `resized` [H, W] are label maps; the neighbours of output
    pixel (y, x) are the source pixels around its position under half-pixel
    centres (the support of bilinear interpolation). Nearest-neighbour resizing
    gives 0; bilinear resizing of class ids creates values between two classes.
    """
    source, resized = np.asarray(source), np.asarray(resized)
    if source.ndim != 2 or resized.ndim != 2:
        raise ConfigError(f"label maps must be 2-D, got {source.shape} and {resized.shape}")
    y0, y1 = _source_neighbours(resized.shape[0], source.shape[0])
    x0, x1 = _source_neighbours(resized.shape[1], source.shape[1])
    found = np.zeros(resized.shape, bool)
    for ys in (y0, y1):
        for xs in (x0, x1):
            found |= source[ys[:, None], xs[None, :]] == resized
    return int((~found).sum())


def kernel_gradient_norms(model, loss_fn, images, labels, layer_names=None):
    """{layer name: L2 norm of d loss / d kernel} for one batch (training=True).

    Layers without a `kernel` are left out; `layer_names` restricts the result.
    """
    import tensorflow as tf

    layers = [layer for layer in model.layers
              if getattr(layer, "kernel", None) is not None
              and (layer_names is None or layer.name in layer_names)]
    if layer_names is not None:
        missing = sorted(set(layer_names) - {layer.name for layer in layers})
        if missing:
            raise ConfigError(f"no layer with a kernel named {', '.join(missing)} in {model.name}")
    kernels = [layer.kernel for layer in layers]
    with tf.GradientTape() as tape:
        loss = loss_fn(labels, model(images, training=True))
    gradients = tape.gradient(loss, kernels)
    return {layer.name: 0.0 if g is None else float(tf.norm(tf.cast(g, tf.float32)))
            for layer, g in zip(layers, gradients)}


def zero_layers(model, layer_names):
    """Set every weight of the named layers of `model` to zero; returns the names."""
    for name in layer_names:
        try:
            layer = model.get_layer(name)
        except ValueError:
            raise ConfigError(f"{model.name} has no layer {name!r}") from None
        layer.set_weights([np.zeros(w.shape, w.dtype) for w in layer.get_weights()])
    return list(layer_names)


def layer_table(model, names=None):
    """Rows (name, class, kernel, strides, output shape, parameters) of `model`'s layers.

    `names`: only these layers, in this order (ConfigError naming a missing one).
    Output shapes are the static shapes of the model as built (None for unknown).
    """
    if names is None:
        layers = model.layers
    else:
        layers = []
        for name in names:
            try:
                layers.append(model.get_layer(name))
            except ValueError:
                raise ConfigError(f"{model.name} has no layer {name!r}") from None
    rows = []
    for layer in layers:
        kernel = getattr(layer, "kernel_size", None) or getattr(layer, "pool_size", None)
        strides = getattr(layer, "strides", None)
        output = layer.output.shape if hasattr(layer, "output") else None
        rows.append({
            "name": layer.name,
            "class": type(layer).__name__,
            "kernel": tuple(kernel) if kernel is not None else None,
            "strides": tuple(strides) if strides is not None else None,
            "output_shape": tuple(output[1:]) if output is not None else None,
            "parameters": int(layer.count_params()),
        })
    return rows


def trainable_parameters(model):
    """Number of trainable parameters of a Keras model."""
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def boundary_band(labels, width):
    """bool [H, W]: pixels within `width` pixels (Euclidean) of a label change.

    A label change is a pair of 4-neighbours with different values (the VOC
    void band, 255, counts as a value: its edges are object boundaries). This
    is the "trimap" band of DeepLab v1 (Chen et al. 2015, Fig. 5).
    """
    from scipy import ndimage

    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ConfigError(f"labels must be 2-D, got shape {labels.shape}")
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 0:
        raise ConfigError(f"width must be an integer >= 0, got {width!r}")
    edge = np.zeros(labels.shape, bool)
    vertical = labels[1:] != labels[:-1]
    horizontal = labels[:, 1:] != labels[:, :-1]
    edge[1:] |= vertical
    edge[:-1] |= vertical
    edge[:, 1:] |= horizontal
    edge[:, :-1] |= horizontal
    if not edge.any():
        return edge
    return ndimage.distance_transform_edt(~edge) <= width


def boundary_accuracy(labels, predictions, width, ignore_label=255):
    """(correct, counted) pixels of `predictions` in the `boundary_band(labels, width)`,
    ignored labels left out; accuracy = correct / counted."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    if labels.shape != predictions.shape:
        raise ConfigError(
            f"labels {labels.shape} and predictions {predictions.shape} differ in shape")
    band = boundary_band(labels, width) & (labels != ignore_label)
    return int((predictions[band] == labels[band]).sum()), int(band.sum())
