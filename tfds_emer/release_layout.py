"""Names in the official EMER release layout (what `manual_dir` holds)."""

EYE_DIR = "eye_movement data"
FACE_FRAMES_DIR = "face_light_align image"
FACE_VIDEO_DIR = "face video"
LABEL_FILE = "EMER_label.xlsx"
SET_FILE = "emer_set.txt"
MAPPING_FILE = "emer_mapping.json"  # optional, ours: explicit column and fold mapping
EYE_SUFFIXES = (".xlsx", ".tsv", ".csv")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
# Canonical EMER_label.xlsx columns.
LABEL_COLUMNS = (
  "ID",
  "ER_7class",
  "ER_3class",
  "ER_valence",
  "ER_arousal",
  "FER_7class",
  "FER_3class",
  "FER_valence",
  "FER_arousal",
  "FER_intensity",
)
# Text columns a Tobii Pro Lab export carries besides the numeric ones.
EYE_TEXT_COLUMNS = ("Participant name", "Recording name", "Sensor")
