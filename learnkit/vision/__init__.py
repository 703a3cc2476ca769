"""Vision: images and masks as data, CNN and transformer backbones, ``vision_learner``, and a ready ImageNet classifier."""
from learnkit.vision.imagenet import imagenet_classifier  # noqa: F401  (``from learnkit.vision import imagenet_classifier``)
