"""Region-based object detection: box operations (:mod:`xpnet.detection.boxes`), training
targets, losses, the region proposal network and COCO AP (the synthetic shapes data set is
:mod:`xpnet.datasets.shapes`). The
detector itself is :func:`xpnet.applications_detection.faster_rcnn`."""

from xpnet.detection import boxes
from xpnet.detection.boxes import batched_nms
from xpnet.detection.boxes import box_area
from xpnet.detection.boxes import box_iou
from xpnet.detection.boxes import clip_boxes_to_image
from xpnet.detection.boxes import decode_boxes
from xpnet.detection.boxes import encode_boxes
from xpnet.detection.boxes import generate_anchors
from xpnet.detection.boxes import grid_anchors
from xpnet.detection.boxes import nms
from xpnet.detection.boxes import remove_small_boxes
from xpnet.detection.metrics import coco_evaluate

__all__ = ["boxes", "batched_nms", "box_area", "box_iou", "clip_boxes_to_image",
           "decode_boxes", "encode_boxes", "generate_anchors", "grid_anchors", "nms",
           "remove_small_boxes", "coco_evaluate"]
