"""The dataset's vocabulary, in one place: class names, label fields, streams and their widths.

`emer_jax` imports these names; nothing else defines them.
"""

import dataclasses

EMOTIONS = ("happiness", "sadness", "fear", "surprise", "disgust", "anger", "neutral")
POLARITIES = ("positive", "negative", "neutral")  # the sign of valence
STIMULI = ("film", "sport")
VIEWS = ("er", "fer")  # the genuine emotion and the displayed facial expression


@dataclasses.dataclass(frozen=True)
class LabelField:
  """One label of a sample: a class (`classes`) or a value in `value_range`."""

  name: str  # the dataset feature, e.g. 'er_emotion'
  classes: tuple[str, ...] = ()
  value_range: tuple[float, float] | None = None

  @property
  def is_class(self) -> bool:
    return bool(self.classes)


LABEL_FIELDS = tuple(
  field
  for view in VIEWS
  for field in (
    LabelField(f"{view}_emotion", EMOTIONS),
    LabelField(f"{view}_polarity", POLARITIES),
    LabelField(f"{view}_valence", value_range=(-1.0, 1.0)),
    LabelField(f"{view}_arousal", value_range=(-1.0, 1.0)),
  )
) + (LabelField("fer_intensity", value_range=(0.0, 3.0)),)
LABELS = {field.name: field for field in LABEL_FIELDS}
# Per-sample fields that identify a sample rather than label it.
INDEX_FIELDS = ("sample_id", "subject_id", "stimulus", "fold")

FACE_SIZE = 112  # stored face frames are FACE_SIZE × FACE_SIZE RGB
EYE_WIDTH = 39  # columns of the `eye` stream (tfds_emer.eye_export.COLUMNS)
GAZE_WIDTH = 2  # gaze point x, y in screen pixels
MAP_SIZE = 64  # the fixation map is MAP_SIZE × MAP_SIZE × 1
# Model input streams and their per-sample shapes (None: any length).
STREAMS = {
  "face": (None, FACE_SIZE, FACE_SIZE, 3),
  "eye": (None, EYE_WIDTH),
  "gaze": (None, GAZE_WIDTH),
  "fixation_map": (MAP_SIZE, MAP_SIZE, 1),
}
