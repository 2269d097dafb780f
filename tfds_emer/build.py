"""Builds the TFDS dataset `emer` without the `tfds` CLI.

  python -m tfds_emer.build --config=real --manual_dir=DIR --data_dir=DIR \\
      [--file_format=array_record|tfrecord] [--workers=N]

tfrecord (for `tfds.load`, tf.data) needs the `[tf]` extra; array_record does not. The `real`
config reads each eye export and face clip once, in `--workers` processes (default: every core).
"""

import pathlib

import tensorflow_datasets as tfds
from absl import app, flags

import tfds_emer  # noqa: F401 - registers `emer`


def build(config: str, data_dir=None, manual_dir=None, file_format="array_record", workers=None):
  builder = tfds.builder(
    f"emer/{config}", data_dir=data_dir, file_format=file_format, workers=workers
  )
  builder.download_and_prepare(
    file_format=file_format,
    download_config=tfds.download.DownloadConfig(manual_dir=manual_dir),
  )
  return builder


def written(builder) -> str:
  """The 'wrote' line of a built dataset: where, how many samples, how big."""
  folder = pathlib.Path(builder.data_dir)
  size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
  n = builder.info.splits["train"].num_examples
  return f"wrote {folder} ({builder.info.full_name}: {n} samples, {size / 1e6:.0f} MB)"


def main(argv):
  del argv
  f = flags.FLAGS
  print(written(build(f.config, f.data_dir, f.manual_dir, f.file_format, f.workers)))


if __name__ == "__main__":
  flags.DEFINE_enum("config", "synthetic", ["synthetic", "synthetic_small", "real"], "Config.")
  flags.DEFINE_string("manual_dir", None, "The unpacked release (config real).")
  flags.DEFINE_string("data_dir", None, "Where TFDS datasets live (TFDS default if unset).")
  flags.DEFINE_enum("file_format", "array_record", ["array_record", "tfrecord"], "Storage format.")
  flags.DEFINE_integer("workers", None, "Processes decoding release samples (default: all cores).")
  app.run(main)
