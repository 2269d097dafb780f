"""Model configurations: every field a variant reads, reference (authors' code) sizes."""

import ml_collections

EMERT_VARIANTS = ("reference", "model_D", "intensity", "emert")
BASELINE_VARIANTS = (
  "face_lstm",
  "face_transformer",
  "eye_lstm",
  "eye_clocks_only",
  "late_fusion",
  "tfn",
  "mult",
)
VARIANTS = EMERT_VARIANTS + BASELINE_VARIANTS


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.variant = "reference"
  # Streams the model reads; ablations drop some ('face', 'eye', 'gaze', 'fixation_map').
  c.modalities = ("face", "eye", "gaze")
  c.use_discriminator = True
  c.feature_dim = 128  # width of every encoder's output tokens (LSTM hidden, face projection)
  c.encoder_dropout = 0.5
  # Training only: per sample, each stream is replaced by zeros (absent) with this probability,
  # never all of them (emer_jax.models.modality_dropout). 0 = off.
  c.modality_dropout = 0.0

  c.face_encoder = ml_collections.ConfigDict()
  c.face_encoder.widths = (64, 128, 256, 512)  # ResNet-18 stage widths
  c.face_encoder.blocks = (2, 2, 2, 2)
  c.face_encoder.num_frames = 8
  c.face_encoder.pretrained = ""  # ImageNet ResNet-18 in torchvision layout (.pth or .npz)

  c.sequence_length = 32  # eye and gaze rows per sample
  c.num_eye_features = 39
  # How the input pipeline presents the eye stream's clock columns (Recording/Eyetracker
  # timestamp): 'relative', t − t₀ of the sample's recording, or 'absolute', as exported (the
  # authors' inputs; stimulus order within a session could leak the label through them).
  c.eye_clocks = "relative"
  c.eye_columns = "all"  # 'clocks': the eye stream reduced to its clock columns
  c.num_gaze_features = 2
  c.sequence_encoder = ml_collections.ConfigDict()
  c.sequence_encoder.num_layers = 3

  c.fixation_encoder = ml_collections.ConfigDict()
  c.fixation_encoder.map_size = 64
  c.fixation_encoder.widths = (32, 64, 128)  # stride-2 3×3 convs
  c.fixation_encoder.grid = 4  # grid×grid tokens

  c.projection_hidden = 0  # 0: one Linear feature_dim → token_dim
  c.projection_negative_slope = 0.1
  c.token_dim = 64

  c.transformer = ml_collections.ConfigDict()
  c.transformer.depth = 2
  c.transformer.num_heads = 8
  c.transformer.head_dim = 64
  c.transformer.mlp_dim = 64
  c.transformer.dropout = 0.5
  c.transformer.emb_dropout = 0.1

  c.head_hidden = (32, 16, 8)
  c.head_negative_slope = 0.01

  c.baseline = ml_collections.ConfigDict()
  c.baseline.lstm_layers = 1  # face_lstm's temporal LSTM
  c.baseline.tfn_dim = 16  # per-modality width before TFN's outer product
  return c


def get_config(variant: str = "reference") -> ml_collections.ConfigDict:
  """The `model` config of a variant; see EMERT.md for what each is."""
  c = base_config()
  c.variant = variant
  if variant == "reference":
    c.eye_clocks = "absolute"  # the authors' 39 columns, unchanged (parity)
  elif variant == "model_D":
    c.projection_hidden = 64
    c.token_dim = 32
    c.transformer.mlp_dim = 32
    c.head_hidden = ()
  elif variant == "intensity":
    c.head_hidden = ()
  elif variant == "emert":
    c.modalities = ("face", "eye", "fixation_map")
  elif variant in ("face_lstm", "face_transformer"):
    c.modalities = ("face",)
    c.use_discriminator = False
  elif variant == "eye_lstm":
    c.modalities = ("eye", "gaze")
    c.use_discriminator = False
  elif variant == "eye_clocks_only":  # can the clocks alone (as the authors feed them) predict?
    c.modalities = ("eye",)
    c.use_discriminator = False
    c.eye_clocks = "absolute"
    c.eye_columns = "clocks"
    c.num_eye_features = 2
  elif variant in ("late_fusion", "tfn", "mult"):
    c.use_discriminator = False
  else:
    raise ValueError(f"Unknown model variant {variant!r}; expected one of {VARIANTS}.")
  return c
