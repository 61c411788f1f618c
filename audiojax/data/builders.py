"""Builds a built-in TFDS dataset (made offline, no download) into a data_dir once."""

import time

import tensorflow_datasets as tfds
from absl import logging


def prepare(builder_class: type[tfds.core.GeneratorBasedBuilder], data_dir: str,
            config: str) -> tfds.core.DatasetBuilder:
  """Builds `<name>/<config>` into `data_dir` (array_record) unless already built.

  `builder.as_data_source(split)[i]` then gives a dict of numpy arrays (text as bytes).
  """
  dataset = builder_class.name
  names = [c.name for c in builder_class.BUILDER_CONFIGS]
  if config not in names:
    raise ValueError(f"unknown {dataset} config {config!r}; known: {', '.join(names)}")
  builder = builder_class(data_dir=data_dir, config=config, file_format="array_record")
  if builder.is_prepared():
    logging.info("%s/%s: already built in %s", dataset, config, builder.data_dir)
    return builder
  logging.info("%s/%s: building into %s", dataset, config, builder.data_dir)
  start = time.time()
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(try_download_gcs=False)
  )
  logging.info("%s/%s: built in %.1f s", dataset, config, time.time() - start)
  return builder
