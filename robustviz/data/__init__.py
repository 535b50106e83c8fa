"""Data: named image data sets as tensors in [0, 1], a tensor-resident batch iterator, and
batch augmentation as pure tensor functions.

::

    import robustviz as rv
    test = rv.data.load("fashion-mnist", "test")            # x: (10000, 1, 28, 28) in [0, 1]
    train = rv.data.load("cifar10", "train", n=5000, seed=0) # stratified: 500 per class
    loader = rv.data.TensorLoader(train, batch_size=128, augment=("crop", "flip"), seed=0)
    for x, y in loader:
        ...

Names: ``digits`` (scikit-learn, always available), ``fashion-mnist``, ``mnist``,
``cifar10``, ``cifar100``, ``svhn``, ``stl10``, ``tiny-imagenet``. ``data/README.md`` says where to put the
files of each for offline use and which command fetches them.
"""
from robustviz.data._augment import hflip, random_crop
from robustviz.data._dataset import Dataset, stratified_indices
from robustviz.data._datasets import (NAMES, SPLITS, DatasetInfo, available, fetch, info,
                                      list_datasets, load, locate)
from robustviz.data._formats import DatasetFormatError
from robustviz.data._loader import AUGMENTATIONS, TensorLoader
from robustviz.data._views import frequency_split, high_frequency, low_frequency, match_images, simclr_augment

__all__ = [
    "simclr_augment", "frequency_split", "high_frequency", "low_frequency", "match_images",
    "load", "available", "locate", "fetch", "info", "list_datasets", "NAMES", "SPLITS",
    "Dataset", "DatasetInfo", "DatasetFormatError", "stratified_indices",
    "TensorLoader", "AUGMENTATIONS", "random_crop", "hflip",
]
