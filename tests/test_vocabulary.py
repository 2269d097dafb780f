"""The dataset owns its vocabulary: emer_jax and the builder read the same names."""

from emer_jax import protocols
from tfds_emer import emer, eye_export, vocabulary


def test_emer_jax_reexports_the_dataset_names():
  assert protocols.EMOTIONS is vocabulary.EMOTIONS
  assert protocols.POLARITIES is vocabulary.POLARITIES
  assert list(protocols.EMER_TARGETS) == [f.name for f in vocabulary.LABEL_FIELDS]
  for field in vocabulary.LABEL_FIELDS:
    target = protocols.EMER_TARGETS[field.name]
    assert target.class_names == field.classes
    assert target.kind == ("classification" if field.is_class else "regression")


def test_builder_features_follow_the_vocabulary():
  features = emer.features(face_frames=4)
  labels = [f.name for f in vocabulary.LABEL_FIELDS]
  assert set(features) == set(vocabulary.STREAMS) | set(labels) | set(vocabulary.INDEX_FIELDS)
  for field in vocabulary.LABEL_FIELDS:
    if field.is_class:
      assert tuple(features[field.name].names) == field.classes
  for name, shape in vocabulary.STREAMS.items():
    assert features[name].shape[1:] == shape[1:]
  assert len(eye_export.COLUMNS) == vocabulary.EYE_WIDTH
