import json
import pathlib
import struct

from emer_jax.train.writers import MetricWriter


def _read(path):
  return [json.loads(line) for line in open(path)]


def test_jsonl_and_tensorboard(tmp_path):
  w = MetricWriter(str(tmp_path), "fold1_seed0", {"fold": 1, "seed": 0})
  w.write(1, {"train/loss": 2.0})
  w.write(2, {"train/loss": 1.5, "val/confusion": [[1, 0], [0, 1]]})
  w.close()
  rows = _read(tmp_path / "metrics.jsonl")
  assert rows[0] == {"step": 1, "fold": 1, "seed": 0, "train/loss": 2.0}
  assert rows[1]["val/confusion"] == [[1, 0], [0, 1]]
  assert list((tmp_path / "tensorboard" / "fold1_seed0").iterdir())


def test_resume_drops_lines_after_the_checkpoint_of_the_same_run(tmp_path):
  w = MetricWriter(str(tmp_path), "a", {"fold": 1, "seed": 0})
  for step in range(1, 6):
    w.write(step, {"train/loss": float(step)})
  w.close()
  other = MetricWriter(str(tmp_path), "b", {"fold": 2, "seed": 0})
  other.write(9, {"train/loss": 9.0})
  other.close()
  with open(tmp_path / "metrics.jsonl", "a") as f:
    f.write('{"step": 6, "fold": 1, "se')  # a line cut short by a kill
  resumed = MetricWriter(str(tmp_path), "a", {"fold": 1, "seed": 0}, resume_step=3)
  resumed.write(4, {"train/loss": 4.0})
  resumed.close()
  rows = _read(tmp_path / "metrics.jsonl")
  assert [(r["fold"], r["step"]) for r in rows] == [(1, 1), (1, 2), (1, 3), (2, 9), (1, 4)]


def test_split_losses_are_the_train_steps_losses_on_the_whole_split():
  import numpy as np
  import optax

  from emer_jax.train.writers import split_losses

  rng = np.random.default_rng(0)
  index = {"er_emotion": rng.integers(0, 7, 20), "er_valence": rng.normal(size=20)}
  indices = np.array([3, 1, 7, 12])
  outputs = {"er_emotion": rng.normal(size=(4, 7)), "er_valence": rng.normal(size=(4, 1))}
  losses = split_losses(index, indices, outputs, {"er_valence": 0.5})
  ce = optax.softmax_cross_entropy_with_integer_labels(
    outputs["er_emotion"], index["er_emotion"][indices]
  ).mean()
  huber = optax.huber_loss(outputs["er_valence"][:, 0], index["er_valence"][indices]).mean()
  assert set(losses) == {"val/loss/task/er_emotion", "val/loss/task/er_valence", "val/loss/task"}
  np.testing.assert_allclose(losses["val/loss/task/er_emotion"], ce, rtol=1e-5)
  np.testing.assert_allclose(losses["val/loss/task"], ce + 0.5 * huber, rtol=1e-5)


def scalar_events(run_dir) -> dict:
  """{tag: [(step, value), ...]} of the TensorBoard event files in `run_dir`.

  Reads the TFRecord framing (length, CRC, event, CRC) itself: TensorBoard's EventAccumulator
  imports TensorFlow where it is installed, which takes seconds.
  """
  from tensorboard.compat.proto import event_pb2

  out = {}
  for path in sorted(pathlib.Path(run_dir).glob("events.out.tfevents.*")):
    data = path.read_bytes()
    offset = 0
    while offset < len(data):
      (length,) = struct.unpack("<Q", data[offset : offset + 8])
      event = event_pb2.Event.FromString(data[offset + 12 : offset + 12 + length])
      offset += 12 + length + 4
      for value in event.summary.value:
        out.setdefault(value.tag, []).append((event.step, value.simple_value))
  return out


def test_test_metrics_go_to_tensorboard_only(tmp_path):
  w = MetricWriter(str(tmp_path), "fold1_seed0", {"fold": 1, "seed": 0})
  w.write(1, {"train/loss": 2.0})
  w.write_test(1, {"test/er_emotion/war": 0.5})
  w.close()
  assert ["train/loss"] == [k for k in _read(tmp_path / "metrics.jsonl")[0] if "/" in k]
  events = scalar_events(tmp_path / "tensorboard" / "fold1_seed0")
  assert events == {"train/loss": [(1, 2.0)], "test/er_emotion/war": [(1, 0.5)]}
