"""The synthetic audio-visual world: objects of several materials fall, bounce, roll and collide in a
box, and every sound is caused by what is seen. `make_clip(WorldConfig(), seed, index)` gives one clip;
`render` writes clips to watch; `builder` packs a tfds data set."""

from data_pipelines.synthetic.clip import Clip, make_clip
from data_pipelines.synthetic.config import WorldConfig, WorldConfigError

__all__ = ["Clip", "WorldConfig", "WorldConfigError", "make_clip"]
