"""Builds the TFDS dataset `emer` without the `tfds` CLI.

  python -m tfds_emer.build --config=real --manual_dir=DIR --data_dir=DIR \\
      [--file_format=array_record|tfrecord]

tfrecord (for `tfds.load`, tf.data) needs the `[tf]` extra; array_record does not.
"""

import tensorflow_datasets as tfds
from absl import flags

import tfds_emer  # noqa: F401 - registers `emer`
from tfds_emer import logs


def build(config: str, data_dir=None, manual_dir=None, file_format="array_record"):
  builder = tfds.builder(f"emer/{config}", data_dir=data_dir, file_format=file_format)
  builder.download_and_prepare(
    file_format=file_format,
    download_config=tfds.download.DownloadConfig(manual_dir=manual_dir),
  )
  return builder


def main(argv):
  del argv
  f = flags.FLAGS
  builder = build(f.config, f.data_dir, f.manual_dir, f.file_format)
  n = builder.info.splits["train"].num_examples
  print(f"Built {builder.info.full_name}: {n} samples in {builder.data_dir}")


if __name__ == "__main__":
  flags.DEFINE_enum("config", "synthetic", ["synthetic", "synthetic_small", "real"], "Config.")
  flags.DEFINE_string("manual_dir", None, "The unpacked release (config real).")
  flags.DEFINE_string("data_dir", None, "Where TFDS datasets live (TFDS default if unset).")
  flags.DEFINE_enum("file_format", "array_record", ["array_record", "tfrecord"], "Storage format.")
  logs.run(main)
