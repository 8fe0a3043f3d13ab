"""Vision: from a selfie to age and gender.

    from vision.profile import profile_selfie
    result = profile_selfie("selfie.jpg")          # path, bytes, PIL image or RGB uint8 array
    face = result.primary                          # the largest face
    face.age.years, face.gender.label, face.gender_for_recommendation

Modules: types (results, exceptions), image (decoding), detect (MTCNN on onnxruntime), agegender
(face-api.js's age/gender network, the default), align and demographics (the older Cydral networks
on dlib-style chips), calibration (age map), profile (the whole path).
Offline tools: mtcnn_export and agegender_export (rebuild the ONNX graphs), fitting and
agegender_fitting (fit templates, calibrations and the age spread on the dev faces).
Importing the package loads no model; sessions start on first use.
"""

from vision.types import (  # noqa: F401  (re-exported: the package's result types and errors)
    AgeEstimate, Box, DetectedFace, FaceProfile, GenderEstimate, ImageTooLarge, Landmarks,
    NoFaceFound, Point, SelfieProfile, UnreadableImage, VisionError,
)
