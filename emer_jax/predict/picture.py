"""One picture per recording: face crops, gaze path and fixation map, ER and FER side by side."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from emer_jax.protocols import TARGETS  # noqa: E402

NUM_CROPS = 8


def crop_picks(num_crops: int) -> np.ndarray:
  """At most NUM_CROPS crop indices, a constant step apart, from the first crop."""
  return np.arange(0, num_crops, -(-num_crops // NUM_CROPS))


def draw(path, loaded, result: dict, screen_px) -> None:
  """Writes the picture of one recording (`loaded` from recordings.load, `result` its entry)."""
  fig = figure(loaded, result, screen_px)
  fig.savefig(path, dpi=80)
  plt.close(fig)


def figure(loaded, result: dict, screen_px):
  """The picture of one recording: evenly spaced face crops above the gaze path, the fixation
  map and the head probabilities."""
  face = loaded.example["face"]
  picks = crop_picks(len(face))
  fig = plt.figure(figsize=(13, 6.5), layout="constrained")
  top, bottom = fig.subfigures(2, 1, height_ratios=(1, 1.6))
  for ax, i in zip(np.atleast_1d(top.subplots(1, NUM_CROPS)), range(NUM_CROPS), strict=True):
    ax.set_axis_off()  # equal slots: the crops sit a constant distance apart
    if i < len(picks):
      ax.imshow(face[picks[i]])
      ax.set_title(f"crop {picks[i] + 1} of {len(face)}", fontsize=8)
  path_ax, map_ax, ax = bottom.subplots(1, 3, width_ratios=(1, 1, 1.4))
  w, h = screen_px
  unit = "fraction" if (w, h) == (1.0, 1.0) else "px"  # a study's gaze: a fraction of the screen
  gaze = loaded.gaze_raw
  path_ax.plot(gaze[:, 0], gaze[:, 1], lw=0.6, color="tab:blue")
  path_ax.scatter(gaze[:1, 0], gaze[:1, 1], color="tab:green", s=15, label="start", zorder=3)
  path_ax.set(xlim=(0, w), ylim=(h, 0), aspect="equal", title="gaze path over the screen")
  path_ax.set(xlabel=f"screen x ({unit})", ylabel=f"screen y ({unit})")
  path_ax.legend(fontsize=7, loc="upper right")
  map_ax.imshow(loaded.example["fixation_map"][..., 0], cmap="magma", extent=(0, w, h, 0))
  map_ax.set(title="fixation map", xlabel=f"screen x ({unit})", ylabel=f"screen y ({unit})")
  _probabilities(ax, result["heads"])
  said = [
    f"{view} {result['heads'][t]['predicted']}"
    for view, t in (("ER", "er_emotion"), ("FER", "fer_emotion"))
    if t in result["heads"]
  ] or [f"{t} {h['predicted']}" for t, h in result["heads"].items() if "predicted" in h]
  gap = {True: "(they differ)", False: "(they agree)", None: ""}[result["gap"]]
  fig.suptitle(f"{result['id']}:  {' · '.join(said)}  {gap}")
  return fig


def _probabilities(ax, heads: dict) -> None:
  """Grouped bars of the 7-class heads (ER and FER), else of every classification head."""
  shown = [t for t in ("er_emotion", "fer_emotion") if t in heads] or [
    t for t in heads if "probabilities" in heads[t]
  ]
  if not shown:
    text = "\n".join(f"{t}: {v['value']:.3f}" for t, v in heads.items())
    ax.text(0.5, 0.5, text, ha="center", va="center")
    ax.set_axis_off()
    return
  names = TARGETS[shown[0]].class_names
  x, width = np.arange(len(names)), 0.8 / len(shown)
  for k, target in enumerate(shown):
    probs = [heads[target]["probabilities"].get(n, 0.0) for n in names]
    ax.bar(x + (k - (len(shown) - 1) / 2) * width, probs, width, label=target)
  ax.set_xticks(x, names, rotation=45, ha="right", fontsize=8)
  ax.set(ylim=(0, 1), xlabel="class", ylabel="probability", title="what the eyes and the face say")
  ax.legend(fontsize=7)
