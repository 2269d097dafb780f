"""Lines that tell a user nothing, which no command or notebook may print (issue 18)."""

NOISE = (
  "Unable to initialize backend",  # jax on a CPU-only machine
  "Downloading and preparing dataset",  # tfds, though nothing is downloaded
  "has no dataset_info.json",  # tfds, on a dataset about to be built
  "Load dataset info from",  # tfds
  "found in sys.modules",  # runpy, when a package imports the module run with -m
  "IProgress not found",  # tqdm.auto in a notebook without ipywidgets
)


def assert_quiet(text: str):
  found = [line for line in text.splitlines() if any(n in line for n in NOISE)]
  assert not found, "noise in the output:\n" + "\n".join(found)
