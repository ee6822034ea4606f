"""Region-of-interest pooling for two-stage detectors: ``RoIAlign`` and ``RoIPool``, called
as ``layer([features, rois])`` on channels-last features, following
``torchvision.ops.roi_align`` / ``roi_pool``. Gradients flow to the features only."""

from typing import NamedTuple

from xpnet.kernels import boxes as kboxes
from xpnet.layers.base import Layer

__all__ = ["RoIAlign", "RoIPool"]


class _RoIContext(NamedTuple):
    rois: object
    shape: tuple
    argmax: object  # RoIPool's bin maxima positions; None for RoIAlign


def _pair(layer, value, what):
    v = (value, value) if isinstance(value, int) else tuple(value)
    if len(v) != 2 or not all(isinstance(a, int) and not isinstance(a, bool) and a > 0
                              for a in v):
        raise ValueError(f"{layer.name}: {what} must be a positive int or a pair of them, "
                         f"got {what}={value!r}")
    return v


class _RoILayer(Layer):
    def __init__(self, output_size, spatial_scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.output_size = _pair(self, output_size, "output_size")
        if not isinstance(spatial_scale, (int, float)) or spatial_scale <= 0:
            raise ValueError(f"{self.name}: spatial_scale must be a positive number, "
                             f"got spatial_scale={spatial_scale!r}")
        self.spatial_scale = float(spatial_scale)

    def check_input_shape(self, input_shape):
        ok = isinstance(input_shape, (list, tuple)) and len(input_shape) == 2 and \
            all(isinstance(s, (list, tuple)) for s in input_shape)
        if not ok or len(input_shape[0]) != 4 or tuple(input_shape[1])[1:] != (5,):
            raise ValueError(f"{self.name}: expects [features (N, H, W, C), rois (K, 5)], "
                             f"got input shapes {input_shape!r}")

    def compute_output_shape(self, input_shape):
        return (None,) + self.output_size + (input_shape[0][-1],)

    def _split(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError(f"{self.name}: call as layer([features, rois]), got {inputs!r}")
        features, rois = inputs
        if features.ndim != 4 or rois.ndim != 2 or rois.shape[1] != 5:
            raise ValueError(f"{self.name}: expects features (N, H, W, C) and rois (K, 5), "
                             f"got {tuple(features.shape)} and {tuple(rois.shape)}")
        return features, rois

    def get_config(self):
        return {**super().get_config(), "output_size": list(self.output_size),
                "spatial_scale": self.spatial_scale}


class RoIAlign(_RoILayer):
    """RoIAlign, ``torchvision.ops.roi_align`` on channels-last features.

    Each RoI ``(batch_index, x1, y1, x2, y2)`` (input coordinates, times ``spatial_scale``
    for the feature map) is cut into ``output_size`` bins; a bin is the mean of a grid of
    bilinear samples, ``sampling_ratio`` per side or ``ceil(roi_size / output_size)`` when
    ``sampling_ratio <= 0``. Samples outside ``[-1, H] x [-1, W]`` count as zero.

    Parameters
    ----------
    output_size : int or (int, int)
        ``(out_h, out_w)``.
    spatial_scale : float, default=1.0
        Feature-map pixels per input pixel (1 / the backbone's stride).
    sampling_ratio : int, default=-1
    aligned : bool, default=True
        Shift the RoI by -0.5 pixel so that sample centres sit on pixel centres (Detectron2);
        False is the original Mask R-CNN rule (RoI sizes at least 1 pixel).
    """

    def __init__(self, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=True,
                 **kwargs):
        super().__init__(output_size, spatial_scale, **kwargs)
        if not isinstance(sampling_ratio, int) or isinstance(sampling_ratio, bool):
            raise ValueError(f"{self.name}: sampling_ratio must be an int, "
                             f"got sampling_ratio={sampling_ratio!r}")
        self.sampling_ratio, self.aligned = sampling_ratio, bool(aligned)

    def forward(self, inputs, training=False):
        features, rois = self._split(inputs)
        y = kboxes.roi_align(features, rois, self.output_size, self.spatial_scale,
                             self.sampling_ratio, self.aligned)
        return y, _RoIContext(rois, tuple(features.shape), None)

    def backward(self, ctx, dy, need_dx=True):
        dx = kboxes.roi_align_grad(dy, ctx.rois, ctx.shape, self.spatial_scale,
                                   self.sampling_ratio, self.aligned)
        return dx, None

    def get_config(self):
        return {**super().get_config(), "sampling_ratio": self.sampling_ratio,
                "aligned": self.aligned}


class RoIPool(_RoILayer):
    """RoIPool (Fast R-CNN), ``torchvision.ops.roi_pool`` on channels-last features: each
    bin of the RoI (corners rounded to feature pixels) holds its maximum, an empty bin 0;
    the gradient goes to the first maximum in row-major order.

    Parameters
    ----------
    output_size : int or (int, int)
    spatial_scale : float, default=1.0
    """

    def forward(self, inputs, training=False):
        features, rois = self._split(inputs)
        y, argmax = kboxes.roi_pool(features, rois, self.output_size, self.spatial_scale)
        return y, _RoIContext(rois, tuple(features.shape), argmax)

    def backward(self, ctx, dy, need_dx=True):
        return kboxes.roi_pool_grad(dy, ctx.argmax, ctx.rois, ctx.shape), None
