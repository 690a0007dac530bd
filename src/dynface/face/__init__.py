"""The face pipeline: detect (RetinaFace, 5 points) -> align (similarity to a template) ->
restore (any callable) -> paste back (feathered, bit-exact outside the masks).

    from dynface.face import template_for, process_photo_to_dir
    report = process_photo_to_dir("photo.jpg", "out", restore_fn, template_for("utkface", 128), 128)

Landmark order everywhere: left eye, right eye, nose, left mouth corner, right mouth corner
("left" = viewer's left), in pixel coordinates.
"""
from dynface.face.align import compose_affine, estimate_similarity, inverse_affine, warp_face
from dynface.face.detect import DetectorUnavailable, Face, detect_faces, set_detector_threads
from dynface.face.paste import paste_faces, upscale_image
from dynface.face.templates import FFHQ_512, UTKFACE_200, template_for, template_names
from dynface.face.folders import FaceJobOptions, PhotoReport, compose_side_by_side, final_output, process_photo_to_dir
from dynface.face.whole import DEFAULT_MIN_FACE, FaceRecord, WholeResult, reframe_aligned, restore_whole_image, sort_faces

__all__ = [
    "DEFAULT_MIN_FACE", "DetectorUnavailable", "FFHQ_512", "Face", "FaceJobOptions", "FaceRecord", "PhotoReport",
    "UTKFACE_200", "WholeResult", "compose_affine", "compose_side_by_side", "detect_faces",
    "estimate_similarity", "inverse_affine", "paste_faces", "process_photo_to_dir",
    "reframe_aligned", "restore_whole_image", "set_detector_threads", "sort_faces",
    "template_for", "template_names", "upscale_image", "warp_face",
]
