import json

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
